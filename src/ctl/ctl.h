/* ctl.h - ensemblectl: subcommands and the helpers they share. */
#ifndef ENSEMBLECTL_CTL_H
#define ENSEMBLECTL_CTL_H

#include <stddef.h>
#include <stdio.h>

#include "ensembled/data.h"

/* Each subcommand takes argv after the subcommand name (argv[0] is the
 * subcommand) and returns the process exit code. */
int ctl_mi(int argc, char **argv);
int ctl_select(int argc, char **argv);
int ctl_simulate(int argc, char **argv);
/* simulate --closed-loop (cmd_loop.c): argv as ctl_simulate's. */
int ctl_simulate_loop(int argc, char **argv);
int ctl_floor(int argc, char **argv);
/* status, ensemble, recompute: argv[0] is the command. */
int ctl_control(int argc, char **argv);
int ctl_watch(int argc, char **argv);
int ctl_replay(int argc, char **argv);
int ctl_keygen(int argc, char **argv);
int ctl_send(int argc, char **argv);

/* Makes sock a CURVE client when either key file is given (both are then
 * required): 0, or -1 with the error printed. */
int ctl_curve_client(void *sock, const char *server_pub, const char *client_secret);

/* Prints "ensemblectl: <message>" on stderr. */
void ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Loads a wide CSV; prints one error line and returns NULL on failure. */
ens_data_t *ctl_load_csv(const char *path);

/* Resolves a comma-separated list of model names of d into out[0..max):
 * returns the count (>= 1), or -1 with the error printed (unknown or
 * repeated name, too many, none). */
int ctl_parse_models(const ens_data_t *d, const char *list, size_t *out, size_t max);

/* Parses a non-negative integer / a double in [lo, hi]; 0 or -1 (error
 * printed, naming the option). */
int ctl_parse_size(const char *opt, const char *s, size_t lo, size_t hi, size_t *out);
int ctl_parse_double(const char *opt, const char *s, double lo, double hi, double *out);

/* Writes s as a JSON string literal. */
void ctl_json_string(FILE *f, const char *s);

/* MessagePack helpers (client.c): print as JSON; unpack after the
 * header pre-walk; look a key up in a map (NULL if absent). */
struct msgpack_object;
struct msgpack_zone;
void ctl_json_object(FILE *f, const struct msgpack_object *o);
int ctl_unpack(const void *buf, size_t len, struct msgpack_zone *zone, struct msgpack_object *out);
const struct msgpack_object *ctl_map_get(const struct msgpack_object *m, const char *key);

#endif
