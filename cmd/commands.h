/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the subcommands of the picket executable. Each takes argc/argv starting at its own
 * name (argv[0] is the subcommand) and returns the process exit status. */
#ifndef PK_CMD_COMMANDS_H
#define PK_CMD_COMMANDS_H

int pk_cmd_sentry(int argc, char **argv);
int pk_cmd_cert(int argc, char **argv);
int pk_cmd_run(int argc, char **argv);
int pk_cmd_status(int argc, char **argv);
int pk_cmd_demo(int argc, char **argv);
int pk_cmd_iptables(int argc, char **argv);

#endif
