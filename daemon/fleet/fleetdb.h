/* fleetdb.h - the fleet thread's copy of every host's evidence: in memory
 * (hosts sorted by host_id, each with its rows sorted by key) and in the
 * daemon's SQLite file (schema 010), so that a restart with PostgreSQL down
 * serves the last fleet evidence it had.  Used by the fleet thread only,
 * through a SQLite connection of its own. */
#ifndef OUTCOMED_FLEETDB_H
#define OUTCOMED_FLEETDB_H

#include <stddef.h>
#include <stdint.h>

#include "fleetsum.h"

struct fleet_host {
        char id[FLEETSUM_HOST_MAX + 1];
        int64_t version;  /* the last batch of it read */
        int64_t seen_at;  /* unix seconds */
        struct fleetsum_row *rows; /* sorted by key; host points to id, strings owned */
        size_t nrows, cap;
        size_t nsorted; /* rows[0, nsorted) are in key order */
};

struct fleet_cache {
        struct fleet_host **hosts; /* sorted by id */
        size_t nhosts;
};

/* The host of that id, or NULL; fleet_cache_host_add makes it (version 0). */
struct fleet_host *fleet_cache_host(const struct fleet_cache *c, const char *id);
struct fleet_host *fleet_cache_host_add(struct fleet_cache *c, const char *id);
void fleet_cache_host_drop(struct fleet_cache *c, const char *id);
void fleet_cache_free(struct fleet_cache *c);
/* Put a copy of src (its strings copied) in the host's rows, replacing the
 * row of the same key; with deleted, remove that row instead.  Rows are
 * appended unsorted: call fleet_host_sort once done.  0 or -ENOMEM. */
int fleet_host_put(struct fleet_host *h, const struct fleetsum_row *src, int deleted);
void fleet_host_sort(struct fleet_host *h);
void fleet_host_clear(struct fleet_host *h);
/* Rows with their strings copied: *dst gets n rows (host NULL).  Free
 * with fleet_rows_free. */
int fleet_rows_copy(const struct fleetsum_row *src, size_t n, struct fleetsum_row **dst);
void fleet_rows_free(struct fleetsum_row *rows, size_t n);
/* Every host's rows in one array sorted for fleetsum_build (pointers into
 * the cache).  Returns the count or -ENOMEM. */
long fleet_cache_rows(const struct fleet_cache *c, struct fleetsum_row **out);

struct fleetdb;
/* Open the daemon's database (the store made its tables).  0 or -1 with
 * err filled. */
int fleetdb_open(struct fleetdb **out, const char *path, char *err, size_t errlen);
void fleetdb_close(struct fleetdb *db);
/* Fill an empty cache from the file.  0 or -1 with err filled. */
int fleetdb_load(struct fleetdb *db, struct fleet_cache *c, char *err, size_t errlen);
/* Replace the file's copy with the cache, in one transaction.  0 or -1
 * with err filled. */
int fleetdb_save(struct fleetdb *db, const struct fleet_cache *c, char *err, size_t errlen);

/* A number of the fleet thread's (fleet_state): -1 when it has none. */
int64_t fleetdb_state_get(struct fleetdb *db, const char *key);
int fleetdb_state_set(struct fleetdb *db, const char *key, int64_t value);

#endif
