/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the libFuzzer entry point every fuzz target defines. */
#ifndef PK_FUZZ_H
#define PK_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
