/* log.h - the daemon's log: one line per event on stderr, with a level.
 * Only the daemon's edge (main, server, store callbacks) logs; library-like
 * modules return errors instead. */
#ifndef OUTCOMED_LOG_H
#define OUTCOMED_LOG_H

enum log_level {
        LOG_LVL_ERROR,
        LOG_LVL_WARN,
        LOG_LVL_INFO,
        LOG_LVL_DEBUG,
};

void log_set_level(enum log_level level);
/* When stderr is the journal (systemd's JOURNAL_STREAM names it), start
 * each line with its syslog priority ("<3>") for journald, instead of
 * "outcomed[pid]: " which the journal adds itself. */
void log_detect_journal(void);
enum log_level log_get_level(void);
/* "error", "warn", "info", "debug"; -1 when it is none. */
int log_parse_level(const char *s);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) \
        do { \
                if (log_get_level() >= LOG_LVL_DEBUG) \
                        log_msg(LOG_LVL_DEBUG, __VA_ARGS__); \
        } while (0)

#endif
