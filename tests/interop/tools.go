// SPDX-License-Identifier: Apache-2.0

//go:build tools

// This file keeps Dapr's Sentry command (built by TestMain, never imported by a test) in go.mod
// and go.sum, so `go build github.com/dapr/dapr/cmd/sentry` works from this module.
package interop

import (
	_ "github.com/dapr/dapr/cmd/sentry"
)
