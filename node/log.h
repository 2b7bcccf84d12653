/* log: leveled log lines on stderr with a UTC timestamp.
 *
 * The level is the one piece of process-wide state in ringkvd: log lines come
 * from every module and a level per node would buy nothing, since one process
 * runs one node (tests that run several share the level harmlessly).
 */
#ifndef RINGKV_LOG_H
#define RINGKV_LOG_H

typedef enum log_level {
    LOG_DEBUG = 0,
    LOG_INFO = 1,
    LOG_WARN = 2,
    LOG_ERROR = 3,
} log_level;

void log_set_level(log_level level);
int log_enabled(log_level level);
/* Parses "debug", "info", "warn" or "error"; returns -1 for anything else. */
int log_level_parse(const char *s, log_level *out);
const char *log_level_name(log_level level);

void log_msg(log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
