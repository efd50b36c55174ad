/* SPDX-License-Identifier: Apache-2.0 */
/* picket: what the sidecar/config unit tests share: loading a configuration as `picket run`
 * would, and checking messages. */
/* cmocka.h must come after the system headers it relies on. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
/* clang-format on */

#include "sidecar_config_util.h"

#include "common/err.h"
#include "sidecar/config.h"

#define MAX_ARGS 32

static int sentinel;

/* The least a valid configuration needs besides what a test varies. */
const char *const base_env[] = {"DAPR_TRUST_ANCHORS=anchors-pem", NULL};
const char *const base_flags[] = {"--app-id", "app", "--sentry-address", "localhost:50001", NULL};

void write_temp_ini(char *path, size_t path_len, const char *text)
{
    const char *dir = getenv("PICKET_TEST_TMP");
    int fd;

    snprintf(path, path_len, "%s/picket-config-XXXXXX", dir != NULL ? dir : "/tmp");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(close(fd), 0);
}

/* Run pk_sidecar_config_load as `picket run [-c FILE] flags...` with the environment env; ini NULL
 * means no -c. On return *cfg is what load wrote (NULL when it wrote nothing). */
int load_full(const char *ini, const char *const *env, const char *const *flags,
              struct pk_sidecar_config **cfg, bool *help, struct pk_err *err)
{
    char path[512];
    char *argv[MAX_ARGS + 1];
    int argc = 0, r;

    argv[argc++] = "run";
    if (ini != NULL) {
        write_temp_ini(path, sizeof(path), ini);
        argv[argc++] = "-c";
        argv[argc++] = path;
    }
    for (size_t i = 0; flags != NULL && flags[i] != NULL; i++) {
        assert_true(argc < MAX_ARGS);
        argv[argc++] = (char *)flags[i];
    }
    argv[argc] = NULL;
    /* A value load must leave alone on error and overwrite otherwise. */
    *cfg = (struct pk_sidecar_config *)&sentinel;
    r = pk_sidecar_config_load(argc, argv, (char *const *)env, cfg, help, err);
    if (ini != NULL) {
        unlink(path);
    }
    if (r != 0) {
        assert_ptr_equal(*cfg, &sentinel);
        assert_true(err->msg[0] != '\0');
        *cfg = NULL;
    } else {
        assert_ptr_not_equal(*cfg, &sentinel);
    }
    return r;
}

int load(const char *ini, const char *const *env, const char *const *flags,
         struct pk_sidecar_config **cfg, struct pk_err *err)
{
    bool help = true;
    int r = load_full(ini, env, flags, cfg, &help, err);
    assert_false(help);
    return r;
}

void assert_contains(const char *msg, const char *want)
{
    if (strstr(msg, want) == NULL) {
        fail_msg("message \"%s\" lacks \"%s\"", msg, want);
    }
}
