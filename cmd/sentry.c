/* SPDX-License-Identifier: Apache-2.0 */
/* picket: `picket sentry`, the Sentry-compatible CA. */
#include <stdio.h>

#include "cmd/commands.h"

int pk_cmd_sentry(int argc, char **argv)
{
    fprintf(stderr, "picket sentry: being built\n");
    return 1;
}
