/*
 * store_sqlite.c - the embedded store backend: one SQLite database in WAL
 * mode holding the replay log, attempts, global cache, lineage and
 * escalations. The schema is versioned with PRAGMA user_version and brought
 * up to date by the migrations below; a store of a newer version is refused
 * untouched.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define APP_ID 0x52424e44 /* "RBND" */

/* Migration i brings the schema from version i to i + 1. Append only. */
static const char *const migrations[] = {
    /* 0 -> 1: the first schema */
    "CREATE TABLE runs("
    "  run_id TEXT PRIMARY KEY,"
    "  status TEXT NOT NULL DEFAULT 'active',"
    "  created_wall INTEGER NOT NULL,"
    "  updated_wall INTEGER NOT NULL,"
    "  next_seq INTEGER NOT NULL DEFAULT 1,"
    "  attempts INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE TABLE attempts("
    "  run_id TEXT NOT NULL,"
    "  attempt INTEGER NOT NULL,"
    "  pid INTEGER NOT NULL DEFAULT 0,"
    "  started_wall INTEGER NOT NULL,"
    "  ended_wall INTEGER NOT NULL DEFAULT 0,"
    "  end_kind INTEGER NOT NULL DEFAULT 0,"
    "  exit_code INTEGER NOT NULL DEFAULT -1,"
    "  signal INTEGER NOT NULL DEFAULT 0,"
    "  detail TEXT,"
    "  PRIMARY KEY(run_id, attempt)"
    ") WITHOUT ROWID;"
    "CREATE TABLE steps("
    "  run_id TEXT NOT NULL,"
    "  step_key TEXT NOT NULL,"
    "  seq INTEGER NOT NULL DEFAULT 0,"
    "  kind TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  attempt INTEGER NOT NULL,"
    "  tries INTEGER NOT NULL DEFAULT 1,"
    "  input_hash TEXT NOT NULL,"
    "  output_hash TEXT,"
    "  output BLOB,"
    "  output_size INTEGER NOT NULL DEFAULT 0,"
    "  cached INTEGER NOT NULL DEFAULT 0,"
    "  start_mono INTEGER NOT NULL DEFAULT 0,"
    "  end_mono INTEGER NOT NULL DEFAULT 0,"
    "  start_wall INTEGER NOT NULL DEFAULT 0,"
    "  end_wall INTEGER NOT NULL DEFAULT 0,"
    "  error TEXT,"
    "  meta TEXT,"
    "  PRIMARY KEY(run_id, step_key)"
    ");"
    "CREATE TABLE lineage("
    "  run_id TEXT NOT NULL,"
    "  step_key TEXT NOT NULL,"
    "  role TEXT NOT NULL,"
    "  hash TEXT NOT NULL,"
    "  PRIMARY KEY(run_id, step_key, role, hash)"
    ") WITHOUT ROWID;"
    "CREATE TABLE cache("
    "  key TEXT PRIMARY KEY,"
    "  state TEXT NOT NULL,"
    "  kind TEXT,"
    "  owner TEXT,"
    "  claimed_wall INTEGER NOT NULL DEFAULT 0,"
    "  output_hash TEXT,"
    "  output_size INTEGER NOT NULL DEFAULT 0,"
    "  created_wall INTEGER NOT NULL DEFAULT 0,"
    "  hits INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE TABLE escalations("
    "  id INTEGER PRIMARY KEY,"
    "  run_id TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  reason TEXT NOT NULL,"
    "  context TEXT,"
    "  note TEXT,"
    "  created_wall INTEGER NOT NULL,"
    "  resolved_wall INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX escalations_run ON escalations(run_id, status);",

    /* 1 -> 2: each run gets a number, and each step row an id that places it
     * in its run: (run_no << 32) + seq once committed, (run_no << 32) + 2^31
     * and up while it has only failed; seq is computed from the id. The next
     * seq of a run is then one seek in the steps table, so that committing a
     * step writes that table alone, with no counter in runs to update. */
    "ALTER TABLE runs ADD COLUMN run_no INTEGER NOT NULL DEFAULT 0;"
    "UPDATE runs SET run_no = n.no FROM"
    " (SELECT run_id, row_number() OVER (ORDER BY created_wall, run_id) AS no"
    "  FROM runs) AS n WHERE runs.run_id = n.run_id;"
    "CREATE UNIQUE INDEX runs_no ON runs(run_no);"
    "ALTER TABLE runs DROP COLUMN next_seq;"
    "CREATE TABLE steps_v2("
    "  id INTEGER PRIMARY KEY,"
    "  run_id TEXT NOT NULL,"
    "  step_key TEXT NOT NULL,"
    "  seq INTEGER GENERATED ALWAYS AS"
    "   (CASE WHEN status = 'committed' THEN id & 4294967295 ELSE 0 END) VIRTUAL,"
    "  kind TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  attempt INTEGER NOT NULL,"
    "  tries INTEGER NOT NULL DEFAULT 1,"
    "  input_hash TEXT NOT NULL,"
    "  output_hash TEXT,"
    "  output BLOB,"
    "  output_size INTEGER NOT NULL DEFAULT 0,"
    "  cached INTEGER NOT NULL DEFAULT 0,"
    "  start_mono INTEGER NOT NULL DEFAULT 0,"
    "  end_mono INTEGER NOT NULL DEFAULT 0,"
    "  start_wall INTEGER NOT NULL DEFAULT 0,"
    "  end_wall INTEGER NOT NULL DEFAULT 0,"
    "  error TEXT,"
    "  meta TEXT,"
    "  UNIQUE(run_id, step_key)"
    ");"
    "INSERT INTO steps_v2(id, run_id, step_key, kind, status, attempt, tries,"
    " input_hash, output_hash, output, output_size, cached, start_mono, end_mono,"
    " start_wall, end_wall, error, meta)"
    " SELECT (r.run_no << 32) + CASE WHEN s.status = 'committed' THEN s.seq"
    " ELSE 2147483648 + s.rowid END, s.run_id, s.step_key, s.kind, s.status,"
    " s.attempt, s.tries, s.input_hash, s.output_hash, s.output, s.output_size,"
    " s.cached, s.start_mono, s.end_mono, s.start_wall, s.end_wall, s.error, s.meta"
    " FROM steps s JOIN runs r ON r.run_id = s.run_id;"
    "DROP TABLE steps;"
    "ALTER TABLE steps_v2 RENAME TO steps;",
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

int rb_store_schema_version(void)
{
    return SCHEMA_VERSION;
}

/* Prepared statements kept for the life of the handle. */
enum {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_STEP_GET,
    S_STEP_ADD,
    S_NEXT_ID,
    S_STEP_INSERT,
    S_LINEAGE_ADD,
    S_CACHE_FILL,
    S_STEP_FAIL,
    S__COUNT
};

static const char *const stmt_sql[S__COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_STEP_GET] =
        "SELECT run_id, step_key, seq, kind, status, attempt, tries, input_hash,"
        " output_hash, output, output_size, cached, start_mono, end_mono,"
        " start_wall, end_wall, error, meta FROM steps"
        " WHERE run_id = ?1 AND step_key = ?2",
    /* The common commit, a step without a row yet, as one statement on its
     * own (autocommit), in the run whose ids start at ?15: the next id is
     * found inside it. A constraint error when the key has a row. */
    [S_STEP_ADD] =
        "INSERT INTO steps(id, run_id, step_key, kind, status, attempt, tries,"
        " input_hash, output_hash, output, output_size, cached, start_mono, end_mono,"
        " start_wall, end_wall, meta)"
        " VALUES(coalesce((SELECT max(id) FROM steps WHERE id > ?15"
        " AND id < ?15 + 2147483648), ?15) + 1, ?1, ?2, ?3, 'committed', ?4, 1, ?5, ?6,"
        " ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    /* The run's first id and the highest committed id in it, if any. */
    [S_NEXT_ID] = "SELECT r.run_no << 32, (SELECT max(s.id) FROM steps s"
                  " WHERE s.id > r.run_no << 32 AND s.id < (r.run_no << 32) + 2147483648)"
                  " FROM runs r WHERE r.run_id = ?1",
    /* OR ROLLBACK: any failure rolls the whole commit back anyway, and it
     * spares SQLite a statement journal. */
    [S_STEP_INSERT] =
        "INSERT OR ROLLBACK INTO steps(id, run_id, step_key, kind, status, attempt,"
        " tries, input_hash, output_hash, output, output_size, cached, start_mono,"
        " end_mono, start_wall, end_wall, meta)"
        " VALUES(?15, ?1, ?2, ?3, 'committed', ?4, 1, ?5, ?6, ?7, ?8, ?9, ?10, ?11,"
        " ?12, ?13, ?14)"
        " ON CONFLICT(run_id, step_key) DO UPDATE SET id = excluded.id,"
        " kind = excluded.kind, status = 'committed', attempt = excluded.attempt,"
        " tries = steps.tries + 1, input_hash = excluded.input_hash,"
        " output_hash = excluded.output_hash, output = excluded.output,"
        " output_size = excluded.output_size, cached = excluded.cached,"
        " start_mono = excluded.start_mono, end_mono = excluded.end_mono,"
        " start_wall = excluded.start_wall, end_wall = excluded.end_wall,"
        " meta = excluded.meta"
        " WHERE steps.status <> 'committed' OR ?16",
    [S_LINEAGE_ADD] = "INSERT OR IGNORE INTO lineage(run_id, step_key, role, hash)"
                      " VALUES(?1, ?2, 'input', ?3)",
    [S_CACHE_FILL] =
        "INSERT INTO cache(key, state, kind, owner, output_hash, output_size,"
        " created_wall) VALUES(?1, 'done', ?2, NULL, ?3, ?4, ?5)"
        " ON CONFLICT(key) DO UPDATE SET state = 'done', owner = NULL,"
        " output_hash = excluded.output_hash,"
        " output_size = excluded.output_size,"
        " created_wall = excluded.created_wall",
    /* A failed try: a new row takes the next id of the run's failed range;
     * nothing is written when the run is missing. */
    [S_STEP_FAIL] =
        "INSERT INTO steps(id, run_id, step_key, kind, status, attempt, tries,"
        " input_hash, start_mono, end_mono, start_wall, end_wall, error, meta)"
        " SELECT coalesce((SELECT max(s.id) FROM steps s"
        "   WHERE s.id >= (r.run_no << 32) + 2147483648 AND s.id < (r.run_no + 1) << 32),"
        "  (r.run_no << 32) + 2147483647) + 1,"
        " ?1, ?2, ?3, 'failed', ?4, 1, ?5, ?6, ?7, ?8, ?9, ?10, ?11"
        " FROM runs r WHERE r.run_id = ?1"
        " ON CONFLICT(run_id, step_key) DO UPDATE SET status = 'failed',"
        " kind = excluded.kind, attempt = excluded.attempt, tries = steps.tries + 1,"
        " input_hash = excluded.input_hash, start_mono = excluded.start_mono,"
        " end_mono = excluded.end_mono, start_wall = excluded.start_wall,"
        " end_wall = excluded.end_wall, error = excluded.error, meta = excluded.meta"
        " WHERE steps.status <> 'committed'",
};

struct sq {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *stmt[S__COUNT];
    char *base_run; /* the run whose first id is known, or NULL */
    int64_t base;   /* its first id, run_no << 32 (run numbers never change) */
};

/* ---- errors ------------------------------------------------------------ */

/* The errno of the last failed system call. SQLite does not record it for
 * errors raised at commit (sqlite3_system_errno() is then 0), so ask the
 * database file and its journal (the WAL) for theirs. */
static int last_errno(sqlite3 *db)
{
    sqlite3_file *journal = NULL;
    int e = sqlite3_system_errno(db);

    if (!e &&
        sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &journal) ==
            SQLITE_OK &&
        journal && journal->pMethods && journal->pMethods->xFileControl &&
        journal->pMethods->xFileControl(journal, SQLITE_FCNTL_LAST_ERRNO, &e) !=
            SQLITE_OK)
        e = 0;
    if (!e && sqlite3_file_control(db, "main", SQLITE_FCNTL_LAST_ERRNO, &e) != SQLITE_OK)
        e = 0;
    return e;
}

static enum rb_err map_rc(sqlite3 *db, int rc)
{
    int e;

    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return RB_OK;
    case SQLITE_FULL:
        return RB_ENOSPC;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return RB_ECORRUPT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return RB_EBUSY;
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
    case SQLITE_CANTOPEN:
        return RB_EACCES;
    case SQLITE_NOMEM:
        return RB_ENOMEM;
    case SQLITE_IOERR:
        e = db ? last_errno(db) : 0;
        if (e == ENOSPC || e == EFBIG || e == EDQUOT)
            return RB_ENOSPC;
        return RB_EIO;
    default:
        return RB_ESTORE;
    }
}

/* Fails with the SQLite error rc, saying what was being done. `what` names
 * either the store itself ("cannot open store": "cannot open store 'x': ...")
 * or an operation in it ("cannot commit step": "cannot commit step in store
 * 'x': ..."). A corrupt store is the subject of its message, so that every
 * such message says "store 'x' is corrupt". */
static enum rb_err sfail(struct sq *s, struct rb_error *err, int rc, const char *what)
{
    enum rb_err code = map_rc(s->db, rc);
    const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    int e = s->db ? last_errno(s->db) : 0;
    size_t n = strlen(what);
    int of_store = n >= 6 && strcmp(what + n - 6, " store") == 0;
    const char *in = of_store ? "" : " in store";

    if (code == RB_ECORRUPT && of_store)
        rb__fail(err, code, "store '%s' is corrupt: %s", s->path, msg);
    else if (code == RB_ECORRUPT)
        rb__fail(err, code, "%s: store '%s' is corrupt (%s)", what, s->path, msg);
    else if (code == RB_ENOSPC && e) /* appends ": disk full (<errno text>)" */
        rb__fail_errno(err, code, e, "%s%s '%s'", what, in, s->path);
    else if (code == RB_ENOSPC)
        rb__fail(err, code, "%s%s '%s': disk full (%s)", what, in, s->path, msg);
    else if (code == RB_EBUSY)
        rb__fail(err, code, "%s%s '%s': locked by another process (%s)", what, in,
                 s->path, msg);
    else
        rb__fail(err, code, "%s%s '%s': %s", what, in, s->path, msg);
    if (err) {
        err->cause = rc;
        err->cause_kind = "sqlite";
    }
    return code;
}

/* ---- transactions -------------------------------------------------------- */

static int run_stmt(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    return rc == SQLITE_ROW ? SQLITE_DONE : rc;
}

static int begin(struct sq *s)
{
    int rc = run_stmt(s->stmt[S_BEGIN]);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int commit(struct sq *s)
{
    int rc = run_stmt(s->stmt[S_COMMIT]);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void rollback(struct sq *s)
{
    if (!sqlite3_get_autocommit(s->db))
        run_stmt(s->stmt[S_ROLLBACK]);
}

/* Prepares a one-off statement; returns SQLite's code. */
static int prep(struct sq *s, const char *sql, sqlite3_stmt **st)
{
    return sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

/* ---- open and migrate ------------------------------------------------------ */

static int exec_sql(struct sq *s, const char *sql)
{
    return sqlite3_exec(s->db, sql, NULL, NULL, NULL);
}

static int pragma_int(struct sq *s, const char *sql, int *out)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(s, sql, &st);

    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int(st, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            *out = 0;
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* Reads the schema version into *version, refusing a database that is not a
 * rebound store or was written by a newer rebound. Writes nothing. */
static enum rb_err read_version(struct sq *s, int *version, struct rb_error *err)
{
    int app = 0, tables = 0, rc;

    rc = pragma_int(s, "PRAGMA user_version", version);
    if (rc == SQLITE_OK)
        rc = pragma_int(s, "PRAGMA application_id", &app);
    if (rc == SQLITE_OK)
        rc = pragma_int(s, "SELECT count(*) FROM sqlite_schema", &tables);
    if (rc != SQLITE_OK)
        return sfail(s, err, rc, "cannot open store");
    if (app != APP_ID && (tables > 0 || *version != 0))
        return rb__fail(err, RB_ECORRUPT,
                        "'%s' is an SQLite database but not a rebound store "
                        "(application id %d); use another folder",
                        s->path, app);
    if (*version > SCHEMA_VERSION)
        return rb__fail(err, RB_ESCHEMA,
                        "store '%s' has schema version %d; this rebound (%s) knows up to "
                        "%d: upgrade rebound to open it (nothing was changed)",
                        s->path, *version, RB_VERSION_STRING, SCHEMA_VERSION);
    return RB_OK;
}

static enum rb_err migrate(struct sq *s, struct rb_error *err)
{
    int version = 0, rc, v;
    enum rb_err refused;
    char sql[128];

    rc = begin(s);
    if (rc != SQLITE_OK)
        return sfail(s, err, rc, "cannot open store");
    refused = read_version(s, &version, err);
    if (refused != RB_OK) {
        rollback(s);
        return refused;
    }
    for (v = version; v < SCHEMA_VERSION; v++) {
        rc = exec_sql(s, migrations[v]);
        if (rc != SQLITE_OK) {
            enum rb_err code = sfail(s, err, rc, "cannot migrate store");
            rollback(s);
            return code;
        }
    }
    if (version != SCHEMA_VERSION) {
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d; PRAGMA application_id = %d",
                 SCHEMA_VERSION, APP_ID);
        rc = exec_sql(s, sql);
        if (rc != SQLITE_OK) {
            enum rb_err code = sfail(s, err, rc, "cannot migrate store");
            rollback(s);
            return code;
        }
    }
    rc = commit(s);
    if (rc != SQLITE_OK) {
        enum rb_err code = sfail(s, err, rc, "cannot migrate store");
        rollback(s);
        return code;
    }
    return RB_OK;
}

static void sq_close(void *be)
{
    struct sq *s = be;
    int i;

    if (!s)
        return;
    for (i = 0; i < S__COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    sqlite3_close(s->db);
    free(s->base_run);
    free(s->path);
    free(s);
}

static const struct rb_store_ops sqlite_ops;

enum rb_err rb__sqlite_open(const char *dir, const struct rb_store_opts *opts,
                            const struct rb_store_ops **ops, void **be,
                            struct rb_error *err)
{
    struct sq *s = calloc(1, sizeof(*s));
    size_t n = strlen(dir) + sizeof("/rebound.db");
    enum rb_err code = RB_OK;
    int rc, i, fd, version = 0;
    char sql[64];

    if (!s)
        return rb__fail(err, RB_ENOMEM, "out of memory");
    s->path = malloc(n);
    if (!s->path) {
        code = rb__fail(err, RB_ENOMEM, "out of memory");
        goto fail;
    }
    snprintf(s->path, n, "%s/rebound.db", dir);

    /* Create the file ourselves so it is 0600; SQLite gives its -wal and
     * -shm files the same mode. */
    fd = open(s->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        code = rb__fail_errno(err, rb__err_from_errno(errno), errno,
                              "cannot open store '%s'", s->path);
        goto fail;
    }
    close(fd);

    rc = sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                         NULL);
    if (rc != SQLITE_OK) {
        code = sfail(s, err, rc, "cannot open store");
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, opts->busy_timeout_ms);
    /* Refuse another program's database, or a newer store, before anything
     * writes to it: switching to WAL rewrites the file's header. migrate()
     * checks again inside its transaction. One read transaction, so that
     * another process's migration is seen whole or not at all. */
    rc = exec_sql(s, "BEGIN");
    code = rc == SQLITE_OK ? read_version(s, &version, err)
                           : sfail(s, err, rc, "cannot open store");
    if (!sqlite3_get_autocommit(s->db))
        exec_sql(s, "COMMIT");
    if (code != RB_OK)
        goto fail;
    /* Switching a new file to WAL takes an exclusive lock without waiting
     * for the busy timeout: retry while another process does the same. */
    for (i = 0;; i += 10) {
        rc = exec_sql(s, "PRAGMA journal_mode = WAL");
        if ((rc & 0xff) != SQLITE_BUSY || i >= opts->busy_timeout_ms)
            break;
        sqlite3_sleep(10);
    }
    if (rc != SQLITE_OK) {
        code = sfail(s, err, rc, "cannot open store");
        goto fail;
    }
    snprintf(sql, sizeof(sql), "PRAGMA synchronous = %s",
             opts->durability == RB_DURABLE_FULL ? "FULL" : "NORMAL");
    rc = exec_sql(s, sql);
    if (rc != SQLITE_OK) {
        code = sfail(s, err, rc, "cannot open store");
        goto fail;
    }
    for (i = 0; i < S__COUNT; i++) {
        if (i == S_STEP_GET || i >= S_STEP_ADD)
            continue; /* need the schema: prepared after migration */
        rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                &s->stmt[i], NULL);
        if (rc != SQLITE_OK) {
            code = sfail(s, err, rc, "cannot open store");
            goto fail;
        }
    }
    code = migrate(s, err);
    if (code != RB_OK)
        goto fail;
    for (i = 0; i < S__COUNT; i++) {
        if (s->stmt[i])
            continue;
        rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                &s->stmt[i], NULL);
        if (rc != SQLITE_OK) {
            code = sfail(s, err, rc, "cannot open store");
            goto fail;
        }
    }
    *ops = &sqlite_ops;
    *be = s;
    return RB_OK;
fail:
    sq_close(s);
    return code;
}

static enum rb_err sq_check(void *be, struct rb_error *err)
{
    struct sq *s = be;
    sqlite3_stmt *st = NULL;
    enum rb_err code = RB_OK;
    int rc = prep(s, "PRAGMA integrity_check", &st);

    if (rc != SQLITE_OK)
        return sfail(s, err, rc, "cannot check store");
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *r = col_text(st, 0);
        if (!r || strcmp(r, "ok") != 0)
            code = rb__fail(err, RB_ECORRUPT, "store '%s' is corrupt: %s", s->path,
                            r ? r : "?");
    } else {
        code = sfail(s, err, rc, "cannot check store");
    }
    sqlite3_finalize(st);
    return code;
}

/* ---- runs and attempts ------------------------------------------------------ */

/* Runs a one-off statement with up to 4 text and int binds described by
 * `types` ("t" text, "i" int64) and the values in order. */
static int exec_bind(struct sq *s, const char *sql, const char *types, ...)
{
    sqlite3_stmt *st = NULL;
    va_list ap;
    int rc = prep(s, sql, &st), i;

    if (rc != SQLITE_OK)
        return rc;
    va_start(ap, types);
    for (i = 0; types[i]; i++) {
        if (types[i] == 't')
            bind_text(st, i + 1, va_arg(ap, const char *));
        else
            sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
    }
    va_end(ap);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static enum rb_err parked_reason(struct sq *s, const char *run_id, struct rb_error *err)
{
    sqlite3_stmt *st = NULL;
    const char *reason = NULL;
    enum rb_err code;

    if (prep(s,
             "SELECT reason FROM escalations WHERE run_id = ?1 AND status = 'open'"
             " ORDER BY id DESC LIMIT 1",
             &st) == SQLITE_OK) {
        bind_text(st, 1, run_id);
        if (sqlite3_step(st) == SQLITE_ROW)
            reason = col_text(st, 0);
    }
    code = rb__fail(err, RB_EPARKED,
                    "run '%s' is parked for a human (%s); resolve it with "
                    "'rebound escalations resolve' first",
                    run_id, reason ? reason : "no reason given");
    sqlite3_finalize(st);
    return code;
}

/* Closes attempts of run_id below `below` that never recorded an end. */
static int close_open_attempts(struct sq *s, const char *run_id, int below,
                               const struct rb_attempt *prev_end)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(s,
                  "UPDATE attempts SET end_kind = ?3, exit_code = ?4, signal = ?5,"
                  " detail = ?6, ended_wall = ?7"
                  " WHERE run_id = ?1 AND attempt < ?2 AND end_kind = 0",
                  &st);

    if (rc != SQLITE_OK)
        return rc;
    bind_text(st, 1, run_id);
    sqlite3_bind_int(st, 2, below);
    sqlite3_bind_int(st, 3, prev_end ? (int)prev_end->end : RB_END_UNKNOWN);
    sqlite3_bind_int(st, 4, prev_end ? prev_end->exit_code : -1);
    sqlite3_bind_int(st, 5, prev_end ? prev_end->signal : 0);
    bind_text(st, 6, prev_end ? prev_end->detail : NULL);
    sqlite3_bind_int64(st, 7, rb__wall_ms());
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static enum rb_err sq_run_begin(void *be, const char *run_id, unsigned flags,
                                int join_attempt, int pid,
                                const struct rb_attempt *prev_end, int *attempt,
                                struct rb_error *err)
{
    struct sq *s = be;
    sqlite3_stmt *st = NULL;
    int64_t now = rb__wall_ms();
    int rc, attempts = 0, parked = 0, a, inserted;
    enum rb_err code;

    rc = begin(s);
    if (rc != SQLITE_OK)
        return sfail(s, err, rc, "cannot open run");
    rc = exec_bind(s,
                   "INSERT INTO runs(run_id, status, created_wall, updated_wall, run_no)"
                   " VALUES(?1, 'active', ?2, ?2,"
                   " (SELECT coalesce(max(run_no), 0) + 1 FROM runs))"
                   " ON CONFLICT DO NOTHING",
                   "ti", run_id, now);
    if (rc != SQLITE_OK)
        goto sqlfail;
    rc = prep(s, "SELECT status = 'parked', attempts FROM runs WHERE run_id = ?1", &st);
    if (rc != SQLITE_OK)
        goto sqlfail;
    bind_text(st, 1, run_id);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        goto sqlfail;
    parked = sqlite3_column_int(st, 0);
    attempts = sqlite3_column_int(st, 1);
    sqlite3_finalize(st);
    st = NULL;
    if (parked && !(flags & RB_RUN_FORCE)) {
        code = parked_reason(s, run_id, err);
        rollback(s);
        return code;
    }
    if (flags & RB_RUN_JOIN)
        a = join_attempt > 0 ? join_attempt : (attempts > 0 ? attempts : 1);
    else
        a = attempts + 1;
    rc = exec_bind(s,
                   "INSERT INTO attempts(run_id, attempt, pid, started_wall)"
                   " VALUES(?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                   "tiii", run_id, (int64_t)a, (int64_t)pid, now);
    if (rc != SQLITE_OK)
        goto sqlfail;
    inserted = sqlite3_changes(s->db) > 0;
    /* Joining an attempt that exists writes nothing, so that a process that
     * only replays (`rebound step` of a committed step) leaves the store as
     * it was and costs no disk flush. */
    if (inserted) {
        rc = close_open_attempts(s, run_id, a, prev_end);
        if (rc != SQLITE_OK)
            goto sqlfail;
        rc = exec_bind(s,
                       "UPDATE runs SET attempts = max(attempts, ?2), updated_wall = ?3"
                       " WHERE run_id = ?1",
                       "tii", run_id, (int64_t)a, now);
        if (rc != SQLITE_OK)
            goto sqlfail;
    }
    rc = commit(s);
    if (rc != SQLITE_OK)
        goto sqlfail;
    *attempt = a;
    return RB_OK;
sqlfail:
    sqlite3_finalize(st);
    code = sfail(s, err, rc, "cannot open run");
    rollback(s);
    return code;
}

static enum rb_err sq_attempt_end(void *be, const char *run_id, int attempt,
                                  enum rb_end_kind end, int exit_code, int signal,
                                  const char *detail, int only_if_open,
                                  struct rb_error *err)
{
    struct sq *s = be;
    sqlite3_stmt *st = NULL;
    int rc = prep(s,
                  "UPDATE attempts SET end_kind = ?3, exit_code = ?4, signal = ?5,"
                  " detail = coalesce(?6, detail), ended_wall = ?7"
                  " WHERE run_id = ?1 AND attempt = ?2 AND (end_kind = 0 OR NOT ?8)",
                  &st);

    if (rc != SQLITE_OK)
        return sfail(s, err, rc, "cannot record attempt end");
    bind_text(st, 1, run_id);
    sqlite3_bind_int(st, 2, attempt);
    sqlite3_bind_int(st, 3, (int)end);
    sqlite3_bind_int(st, 4, exit_code);
    sqlite3_bind_int(st, 5, signal);
    bind_text(st, 6, detail);
    sqlite3_bind_int64(st, 7, rb__wall_ms());
    sqlite3_bind_int(st, 8, only_if_open);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sfail(s, err, rc, "cannot record attempt end");
    if (sqlite3_changes(s->db) == 0 && !only_if_open)
        return rb__fail(err, RB_ENOENT, "run '%s' has no attempt %d", run_id, attempt);
    return RB_OK;
}

static void fill_attempt(sqlite3_stmt *st, struct rb_attempt *a)
{
    /* columns: attempt, started_wall, ended_wall, pid, end_kind, exit_code,
     * signal, detail */
    a->attempt = sqlite3_column_int(st, 0);
    a->started_wall_ms = sqlite3_column_int64(st, 1);
    a->ended_wall_ms = sqlite3_column_int64(st, 2);
    a->pid = sqlite3_column_int(st, 3);
    a->end = (enum rb_end_kind)sqlite3_column_int(st, 4);
    a->exit_code = sqlite3_column_int(st, 5);
    a->signal = sqlite3_column_int(st, 6);
    a->detail = (char *)col_text(st, 7);
}

#define ATTEMPT_COLS                                                                     \
    "attempt, started_wall, ended_wall, pid, end_kind, exit_code, signal, detail"

static enum rb_err sq_attempt_prev(void *be, const char *run_id, int attempt,
                                   struct rb_attempt *out, struct rb_error *err)
{
    struct sq *s = be;
    sqlite3_stmt *st = NULL;
    struct rb_attempt a;
    enum rb_err code = RB_OK;
    int rc =
        prep(s,
             "SELECT " ATTEMPT_COLS " FROM attempts WHERE run_id = ?1 AND attempt < ?2"
             " ORDER BY attempt DESC LIMIT 1",
             &st);

    if (rc != SQLITE_OK)
        return sfail(s, err, rc, "cannot read attempts");
    bind_text(st, 1, run_id);
    sqlite3_bind_int(st, 2, attempt);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        fill_attempt(st, &a);
        a.detail = rb__strdup(a.detail);
        *out = a;
    } else if (rc == SQLITE_DONE) {
        code = rb__fail(err, RB_ENOENT, "run '%s' has no attempt before %d", run_id,
                        attempt);
    } else {
        code = sfail(s, err, rc, "cannot read attempts");
    }
    sqlite3_finalize(st);
    return code;
}

/* ---- steps --------------------------------------------------------------- */

/* Fills rec from a row laid out as S_STEP_GET's columns. */
static void fill_record(sqlite3_stmt *st, struct rb_step_record *rec)
{
    rec->run_id = col_text(st, 0);
    rec->key = col_text(st, 1);
    rec->seq = sqlite3_column_int64(st, 2);
    rec->kind = col_text(st, 3);
    rec->status = col_text(st, 4);
    rec->attempt = sqlite3_column_int(st, 5);
    rec->tries = sqlite3_column_int(st, 6);
    rec->input_hash = col_text(st, 7);
    rec->output_hash = col_text(st, 8);
    if (sqlite3_column_type(st, 9) == SQLITE_NULL) {
        rec->output = NULL;
    } else {
        rec->output = sqlite3_column_blob(st, 9);
        if (!rec->output)
            rec->output = (const unsigned char *)"";
    }
    rec->output_len = (size_t)sqlite3_column_int64(st, 10);
    rec->cached = sqlite3_column_int(st, 11);
    rec->start_mono_ns = sqlite3_column_int64(st, 12);
    rec->end_mono_ns = sqlite3_column_int64(st, 13);
    rec->start_wall_ms = sqlite3_column_int64(st, 14);
    rec->end_wall_ms = sqlite3_column_int64(st, 15);
    rec->error = col_text(st, 16);
    rec->meta = col_text(st, 17);
}

static enum rb_err sq_step_get(void *be, const char *run_id, const char *key,
                               rb_step_cb cb, void *arg, int *found, struct rb_error *err)
{
    struct sq *s = be;
    sqlite3_stmt *st = s->stmt[S_STEP_GET];
    struct rb_step_record rec;
    enum rb_err code = RB_OK;
    int rc;

    bind_text(st, 1, run_id);
    bind_text(st, 2, key);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        fill_record(st, &rec);
        *found = 1;
        cb(arg, &rec);
    } else if (rc == SQLITE_DONE) {
        *found = 0;
    } else {
        code = sfail(s, err, rc, "cannot read step");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return code;
}

/* Binds rec's fields as S_STEP_ADD and S_STEP_INSERT number them. */
static void bind_step(sqlite3_stmt *st, const struct rb_step_record *rec)
{
    bind_text(st, 1, rec->run_id);
    bind_text(st, 2, rec->key);
    bind_text(st, 3, rec->kind);
    sqlite3_bind_int(st, 4, rec->attempt);
    bind_text(st, 5, rec->input_hash);
    bind_text(st, 6, rec->output_hash);
    if (rec->output)
        sqlite3_bind_blob64(st, 7, rec->output, rec->output_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 7);
    sqlite3_bind_int64(st, 8, (int64_t)rec->output_len);
    sqlite3_bind_int(st, 9, rec->cached);
    sqlite3_bind_int64(st, 10, rec->start_mono_ns);
    sqlite3_bind_int64(st, 11, rec->end_mono_ns);
    sqlite3_bind_int64(st, 12, rec->start_wall_ms);
    sqlite3_bind_int64(st, 13, rec->end_wall_ms);
    bind_text(st, 14, rec->meta);
}

static enum rb_err sq_step_commit(void *be, const struct rb_step_record *rec,
                                  const char *const *inputs, size_t n_inputs,
                                  const char *cache_key, int overwrite, int64_t *seq_out,
                                  struct rb_error *err)
{
    struct sq *s = be;
    sqlite3_stmt *st;
    int64_t base, id;
    size_t i;
    int rc;
    enum rb_err code;

    /* The common case in one statement: a key with no row yet, no lineage,
     * no cache entry, in a run whose first id is known. A constraint error
     * (the key has a row: a failed try, or another process committed it
     * meanwhile) leaves nothing written, and the transaction below sorts it
     * out. */
    if (n_inputs == 0 && !cache_key && !overwrite && s->base_run &&
        strcmp(s->base_run, rec->run_id) == 0) {
        st = s->stmt[S_STEP_ADD];
        bind_step(st, rec);
        sqlite3_bind_int64(st, 15, s->base);
        rc = run_stmt(st);
        sqlite3_clear_bindings(st);
        if (rc == SQLITE_DONE) {
            *seq_out = sqlite3_last_insert_rowid(s->db) - s->base;
            return RB_OK;
        }
        if ((rc & 0xff) != SQLITE_CONSTRAINT)
            return sfail(s, err, rc, "cannot commit step");
    }

    rc = begin(s);
    if (rc != SQLITE_OK)
        return sfail(s, err, rc, "cannot commit step");

    st = s->stmt[S_NEXT_ID];
    bind_text(st, 1, rec->run_id);
    rc = sqlite3_step(st);
    base = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    id = rc == SQLITE_ROW && sqlite3_column_type(st, 1) != SQLITE_NULL
             ? sqlite3_column_int64(st, 1)
             : base;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) {
        if (rc == SQLITE_DONE) {
            rollback(s);
            return rb__fail(err, RB_ENOENT, "run '%s' is not in the store", rec->run_id);
        }
        goto sqlfail;
    }
    id++;
    if (!s->base_run || strcmp(s->base_run, rec->run_id) != 0) {
        char *run = rb__strdup(rec->run_id);

        if (run) {
            free(s->base_run);
            s->base_run = run;
            s->base = base;
        }
    }

    st = s->stmt[S_STEP_INSERT];
    bind_step(st, rec);
    sqlite3_bind_int64(st, 15, id);
    sqlite3_bind_int(st, 16, overwrite);
    rc = run_stmt(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE)
        goto sqlfail;
    if (sqlite3_changes(s->db) == 0) {
        rollback(s);
        return rb__fail(err, RB_EEXIST, "step '%s' of run '%s' is already committed",
                        rec->key, rec->run_id);
    }

    st = s->stmt[S_LINEAGE_ADD];
    for (i = 0; i < n_inputs; i++) {
        bind_text(st, 1, rec->run_id);
        bind_text(st, 2, rec->key);
        bind_text(st, 3, inputs[i]);
        rc = run_stmt(st);
        if (rc != SQLITE_DONE)
            goto sqlfail;
    }

    if (cache_key) {
        st = s->stmt[S_CACHE_FILL];
        bind_text(st, 1, cache_key);
        bind_text(st, 2, rec->kind);
        bind_text(st, 3, rec->output_hash);
        sqlite3_bind_int64(st, 4, (int64_t)rec->output_len);
        sqlite3_bind_int64(st, 5, rec->end_wall_ms);
        rc = run_stmt(st);
        if (rc != SQLITE_DONE)
            goto sqlfail;
    }

    rc = commit(s);
    if (rc != SQLITE_OK)
        goto sqlfail;
    *seq_out = id - base;
    return RB_OK;
sqlfail:
    code = sfail(s, err, rc, "cannot commit step");
    rollback(s);
    return code;
}

static enum rb_err sq_step_fail(void *be, const struct rb_step_record *rec,
                                struct rb_error *err)
{
    struct sq *s = be;
    sqlite3_stmt *st = s->stmt[S_STEP_FAIL];
    int rc;

    bind_text(st, 1, rec->run_id);
    bind_text(st, 2, rec->key);
    bind_text(st, 3, rec->kind);
    sqlite3_bind_int(st, 4, rec->attempt);
    bind_text(st, 5, rec->input_hash);
    sqlite3_bind_int64(st, 6, rec->start_mono_ns);
    sqlite3_bind_int64(st, 7, rec->end_mono_ns);
    sqlite3_bind_int64(st, 8, rec->start_wall_ms);
    sqlite3_bind_int64(st, 9, rec->end_wall_ms);
    bind_text(st, 10, rec->error);
    bind_text(st, 11, rec->meta);
    rc = run_stmt(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE)
        return sfail(s, err, rc, "cannot record failed step");
    return RB_OK;
}

/* ---- global cache ---------------------------------------------------------- */

static enum rb_err sq_cache_claim(void *be, const char *cache_key, const char *kind,
                                  const char *owner, const char *steal_from,
                                  struct rb__claim_result *out, struct rb_error *err)
{
    struct sq *s = be;
    sqlite3_stmt *st = NULL;
    struct rb__claim_result res;
    int64_t now = rb__wall_ms();
    enum rb_err code;
    int rc;

    memset(&res, 0, sizeof(res));
    rc = begin(s);
    if (rc != SQLITE_OK)
        return sfail(s, err, rc, "cannot use global cache");
    rc = prep(s,
              "SELECT state, owner, claimed_wall, output_hash, output_size FROM cache"
              " WHERE key = ?1",
              &st);
    if (rc != SQLITE_OK)
        goto sqlfail;
    bind_text(st, 1, cache_key);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_finalize(st);
        st = NULL;
        rc = exec_bind(s,
                       "INSERT INTO cache(key, state, kind, owner, claimed_wall)"
                       " VALUES(?1, 'pending', ?2, ?3, ?4)",
                       "ttti", cache_key, kind, owner, now);
        if (rc != SQLITE_OK)
            goto sqlfail;
        res.state = RB__CLAIM_MINE;
    } else if (rc == SQLITE_ROW) {
        const char *state = col_text(st, 0), *cur = col_text(st, 1);

        if (state && strcmp(state, "done") == 0) {
            res.state = RB__CLAIM_DONE;
            snprintf(res.hash, sizeof(res.hash), "%s",
                     col_text(st, 3) ? col_text(st, 3) : "");
            res.size = sqlite3_column_int64(st, 4);
            sqlite3_finalize(st);
            st = NULL;
            rc = exec_bind(s, "UPDATE cache SET hits = hits + 1 WHERE key = ?1", "t",
                           cache_key);
        } else if (cur && (strcmp(cur, owner) == 0 ||
                           (steal_from && strcmp(cur, steal_from) == 0))) {
            sqlite3_finalize(st);
            st = NULL;
            rc = exec_bind(
                s, "UPDATE cache SET owner = ?2, claimed_wall = ?3 WHERE key = ?1", "tti",
                cache_key, owner, now);
            res.state = RB__CLAIM_MINE;
        } else {
            res.state = RB__CLAIM_BUSY;
            snprintf(res.owner, sizeof(res.owner), "%s", cur ? cur : "");
            res.claimed_wall_ms = sqlite3_column_int64(st, 2);
            sqlite3_finalize(st);
            st = NULL;
            rc = SQLITE_OK;
        }
        if (rc != SQLITE_OK)
            goto sqlfail;
    } else {
        goto sqlfail;
    }
    rc = commit(s);
    if (rc != SQLITE_OK)
        goto sqlfail;
    *out = res;
    return RB_OK;
sqlfail:
    sqlite3_finalize(st);
    code = sfail(s, err, rc, "cannot use global cache");
    rollback(s);
    return code;
}

static enum rb_err sq_cache_release(void *be, const char *cache_key, const char *owner,
                                    struct rb_error *err)
{
    struct sq *s = be;
    int rc = exec_bind(
        s, "DELETE FROM cache WHERE key = ?1 AND state = 'pending' AND owner = ?2", "tt",
        cache_key, owner);

    return rc == SQLITE_OK ? RB_OK : sfail(s, err, rc, "cannot release cache entry");
}

static enum rb_err sq_cache_drop(void *be, const char *cache_key, struct rb_error *err)
{
    struct sq *s = be;
    int rc = exec_bind(s, "DELETE FROM cache WHERE key = ?1", "t", cache_key);

    return rc == SQLITE_OK ? RB_OK : sfail(s, err, rc, "cannot drop cache entry");
}

/* ---- escalations ------------------------------------------------------------- */

static enum rb_err sq_park(void *be, const char *run_id, const char *reason,
                           const char *context, struct rb_error *err)
{
    struct sq *s = be;
    int64_t now = rb__wall_ms();
    enum rb_err code;
    int rc = begin(s);

    if (rc != SQLITE_OK)
        return sfail(s, err, rc, "cannot park run");
    rc = exec_bind(
        s, "UPDATE runs SET status = 'parked', updated_wall = ?2 WHERE run_id = ?1", "ti",
        run_id, now);
    if (rc == SQLITE_OK)
        rc = exec_bind(
            s,
            "INSERT INTO escalations(run_id, status, reason, context, created_wall)"
            " VALUES(?1, 'open', ?2, ?3, ?4)",
            "ttti", run_id, reason, context, now);
    if (rc == SQLITE_OK)
        rc = commit(s);
    if (rc == SQLITE_OK)
        return RB_OK;
    code = sfail(s, err, rc, "cannot park run");
    rollback(s);
    return code;
}

static enum rb_err sq_resolve(void *be, const char *run_id, const char *note,
                              struct rb_error *err)
{
    struct sq *s = be;
    int64_t now = rb__wall_ms();
    enum rb_err code;
    int rc = begin(s), n;

    if (rc != SQLITE_OK)
        return sfail(s, err, rc, "cannot resolve escalation");
    rc = exec_bind(s,
                   "UPDATE escalations SET status = 'resolved', note = ?2,"
                   " resolved_wall = ?3 WHERE run_id = ?1 AND status = 'open'",
                   "tti", run_id, note, now);
    if (rc != SQLITE_OK)
        goto sqlfail;
    n = sqlite3_changes(s->db);
    if (n == 0) {
        rollback(s);
        return rb__fail(err, RB_ENOENT, "run '%s' has no open escalation", run_id);
    }
    rc = exec_bind(
        s, "UPDATE runs SET status = 'active', updated_wall = ?2 WHERE run_id = ?1", "ti",
        run_id, now);
    if (rc == SQLITE_OK)
        rc = commit(s);
    if (rc == SQLITE_OK)
        return RB_OK;
sqlfail:
    code = sfail(s, err, rc, "cannot resolve escalation");
    rollback(s);
    return code;
}

/* ---- reading ----------------------------------------------------------------- */

static enum rb_err run_exists(struct sq *s, const char *run_id, struct rb_error *err)
{
    sqlite3_stmt *st = NULL;
    enum rb_err code = RB_OK;
    int rc = prep(s, "SELECT 1 FROM runs WHERE run_id = ?1", &st);

    if (rc != SQLITE_OK)
        return sfail(s, err, rc, "cannot read store");
    bind_text(st, 1, run_id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        code = rb__fail(err, RB_ENOENT, "no run '%s' in store '%s'", run_id, s->path);
    else if (rc != SQLITE_ROW)
        code = sfail(s, err, rc, "cannot read store");
    sqlite3_finalize(st);
    return code;
}

static enum rb_err sq_list_runs(void *be, rb_run_cb cb, void *arg, struct rb_error *err)
{
    struct sq *s = be;
    sqlite3_stmt *st = NULL;
    struct rb_run_summary r;
    enum rb_err code = RB_OK;
    int rc = prep(s,
                  "SELECT r.run_id, r.status, r.created_wall,"
                  " max(r.updated_wall, coalesce((SELECT max(s.end_wall) FROM steps s"
                  "  WHERE s.run_id = r.run_id), 0)), r.attempts,"
                  " (SELECT count(*) FROM steps s WHERE s.run_id = r.run_id"
                  "  AND s.status = 'committed'),"
                  " (SELECT count(*) FROM steps s WHERE s.run_id = r.run_id"
                  "  AND s.status = 'failed')"
                  " FROM runs r ORDER BY r.created_wall DESC, r.run_id",
                  &st);

    if (rc != SQLITE_OK)
        return sfail(s, err, rc, "cannot list runs");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        r.run_id = col_text(st, 0);
        r.status = col_text(st, 1);
        r.created_wall_ms = sqlite3_column_int64(st, 2);
        r.updated_wall_ms = sqlite3_column_int64(st, 3);
        r.attempts = sqlite3_column_int(st, 4);
        r.steps = sqlite3_column_int64(st, 5);
        r.failed = sqlite3_column_int64(st, 6);
        if (cb(arg, &r))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        code = sfail(s, err, rc, "cannot list runs");
    sqlite3_finalize(st);
    return code;
}

static enum rb_err sq_read_log(void *be, const char *run_id, rb_step_cb cb, void *arg,
                               struct rb_error *err)
{
    struct sq *s = be;
    sqlite3_stmt *st = NULL;
    struct rb_step_record rec;
    enum rb_err code = run_exists(s, run_id, err);
    int rc;

    if (code != RB_OK)
        return code;
    rc = prep(s,
              "SELECT run_id, step_key, seq, kind, status, attempt, tries, input_hash,"
              " output_hash, output, output_size, cached, start_mono, end_mono,"
              " start_wall, end_wall, error, meta FROM steps WHERE run_id = ?1"
              " ORDER BY status <> 'committed', seq, start_wall, step_key",
              &st);
    if (rc != SQLITE_OK)
        return sfail(s, err, rc, "cannot read log");
    bind_text(st, 1, run_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        fill_record(st, &rec);
        if (cb(arg, &rec))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        code = sfail(s, err, rc, "cannot read log");
    sqlite3_finalize(st);
    return code;
}

static enum rb_err sq_read_attempts(void *be, const char *run_id, rb_attempt_cb cb,
                                    void *arg, struct rb_error *err)
{
    struct sq *s = be;
    sqlite3_stmt *st = NULL;
    struct rb_attempt a;
    enum rb_err code = run_exists(s, run_id, err);
    int rc;

    if (code != RB_OK)
        return code;
    rc = prep(s,
              "SELECT " ATTEMPT_COLS " FROM attempts WHERE run_id = ?1 ORDER BY attempt",
              &st);
    if (rc != SQLITE_OK)
        return sfail(s, err, rc, "cannot read attempts");
    bind_text(st, 1, run_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        fill_attempt(st, &a);
        if (cb(arg, &a))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        code = sfail(s, err, rc, "cannot read attempts");
    sqlite3_finalize(st);
    return code;
}

static enum rb_err sq_read_lineage(void *be, const char *run_id, rb_lineage_cb cb,
                                   void *arg, struct rb_error *err)
{
    struct sq *s = be;
    sqlite3_stmt *st = NULL;
    struct rb_lineage_edge e;
    enum rb_err code = run_exists(s, run_id, err);
    int rc;

    if (code != RB_OK)
        return code;
    rc = prep(s,
              "SELECT step_key, 'output', output_hash, NULL, seq FROM steps"
              " WHERE run_id = ?1 AND status = 'committed'"
              " UNION ALL"
              " SELECT l.step_key, 'input', l.hash,"
              "  (SELECT p.step_key FROM steps p WHERE p.run_id = l.run_id"
              "   AND p.output_hash = l.hash AND p.status = 'committed'"
              "   ORDER BY p.seq LIMIT 1),"
              "  coalesce((SELECT c.seq FROM steps c WHERE c.run_id = l.run_id"
              "   AND c.step_key = l.step_key), 0)"
              " FROM lineage l WHERE l.run_id = ?1"
              " ORDER BY 5, 2, 3",
              &st);
    if (rc != SQLITE_OK)
        return sfail(s, err, rc, "cannot read lineage");
    bind_text(st, 1, run_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        e.key = col_text(st, 0);
        e.role = col_text(st, 1);
        e.hash = col_text(st, 2);
        e.producer = col_text(st, 3);
        if (cb(arg, &e))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        code = sfail(s, err, rc, "cannot read lineage");
    sqlite3_finalize(st);
    return code;
}

static enum rb_err sq_list_escalations(void *be, int only_open, rb_escalation_cb cb,
                                       void *arg, struct rb_error *err)
{
    struct sq *s = be;
    sqlite3_stmt *st = NULL;
    struct rb_escalation e;
    enum rb_err code = RB_OK;
    int rc = prep(s,
                  "SELECT id, run_id, status, reason, context, note, created_wall,"
                  " resolved_wall FROM escalations WHERE status = 'open' OR NOT ?1"
                  " ORDER BY status <> 'open', id DESC",
                  &st);

    if (rc != SQLITE_OK)
        return sfail(s, err, rc, "cannot list escalations");
    sqlite3_bind_int(st, 1, only_open);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        e.id = sqlite3_column_int64(st, 0);
        e.run_id = col_text(st, 1);
        e.status = col_text(st, 2);
        e.reason = col_text(st, 3);
        e.context = col_text(st, 4);
        e.note = col_text(st, 5);
        e.created_wall_ms = sqlite3_column_int64(st, 6);
        e.resolved_wall_ms = sqlite3_column_int64(st, 7);
        if (cb(arg, &e))
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        code = sfail(s, err, rc, "cannot list escalations");
    sqlite3_finalize(st);
    return code;
}

static const struct rb_store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .check = sq_check,
    .run_begin = sq_run_begin,
    .attempt_end = sq_attempt_end,
    .attempt_prev = sq_attempt_prev,
    .step_get = sq_step_get,
    .step_commit = sq_step_commit,
    .step_fail = sq_step_fail,
    .cache_claim = sq_cache_claim,
    .cache_release = sq_cache_release,
    .cache_drop = sq_cache_drop,
    .park = sq_park,
    .resolve = sq_resolve,
    .list_runs = sq_list_runs,
    .read_log = sq_read_log,
    .read_attempts = sq_read_attempts,
    .read_lineage = sq_read_lineage,
    .list_escalations = sq_list_escalations,
};
