/* log.c - level-filtered log lines on stderr: "outcomed[pid]: LEVEL: text",
 * or "<PRIORITY>LEVEL: text" when stderr is systemd's journal.
 * No timestamps: under systemd the journal adds them, and in a terminal the
 * order is what matters. */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static enum log_level log__level = LOG_LVL_INFO;
static const char *const log__names[] = { "error", "warn", "info", "debug" };
static const int log__priorities[] = { 3, 4, 6, 7 }; /* LOG_ERR .. LOG_DEBUG */
static bool log__journal;

void log_detect_journal(void)
{
        const char *js = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;
        log__journal = js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
                       fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
                       (unsigned long long)st.st_ino == ino;
}

void log_set_level(enum log_level level)
{
        log__level = level;
}

enum log_level log_get_level(void)
{
        return log__level;
}

int log_parse_level(const char *s)
{
        for (int i = 0; i < 4; i++)
                if (strcmp(s, log__names[i]) == 0)
                        return i;
        if (strcmp(s, "warning") == 0)
                return LOG_LVL_WARN;
        return -1;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
        char line[1024];
        va_list ap;
        if (level > log__level)
                return;
        int n = log__journal
                        ? snprintf(line, sizeof(line), "<%d>%s: ", log__priorities[level],
                                   log__names[level])
                        : snprintf(line, sizeof(line), "outcomed[%d]: %s: ", (int)getpid(),
                                   log__names[level]);
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
        va_end(ap);
        size_t len = strlen(line);
        line[len++] = '\n';
        fwrite(line, 1, len, stderr);
}
