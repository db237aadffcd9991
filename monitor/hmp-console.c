/*
 * The HMP console: sessions on sockets and stdio.
 *
 * Protocol (what a client sees):
 *   on connect:  "QEMU 7.2.0 monitor - type 'help' for more information\r\n(qemu) "
 *   per line:    the line echoed, "\r\n", the command's output, "(qemu) "
 * A line ends at "\r\n", "\n" or "\r". Backspace/DEL erase a character,
 * other control characters and ESC [ ... sequences are dropped. While a
 * command keeps the monitor suspended (migrate without -d, quit) input is
 * left unread and no prompt is shown; resuming shows the prompt and runs
 * the lines that arrived meanwhile.
 *
 * Sockets and non-tty stdio go through monitor_server_start(); a tty on
 * stdin gets GNU readline (history, tab completion of command and info
 * names) driven from the glib main loop. End of input on stdin only stops
 * reading: the VM keeps running, as QEMU 7.2 does.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <glib-unix.h>
#include <readline/history.h>
#include <readline/readline.h>

#include "fd-io.h"
#include "hmp-int.h"

#define HMP_BANNER "QEMU 7.2.0 monitor - type 'help' for more information\n"
#define HMP_PROMPT "(qemu) "

typedef enum EscState { ESC_NONE, ESC_SEEN, ESC_CSI } EscState;

typedef struct HmpSession {
    GString *line;          /* the line being typed */
    GString *unread;        /* input received but not yet processed */
    EscState esc;
    bool after_cr;          /* swallow the '\n' of "\r\n" */
    bool suspended;
    bool readline;          /* the stdio readline console */
    guint source;           /* hmp_monitor_set_source */
} HmpSession;

static Monitor *rl_mon;             /* the readline console, if any */
static guint rl_watch;

static HmpSession *session_of(Monitor *mon)
{
    return mon && !mon->is_qmp ? mon->proto : NULL;
}

static void run_line(Monitor *mon, const char *line)
{
    Monitor *prev = monitor_set_cur(mon);

    hmp_handle_command(mon, line);
    monitor_set_cur(prev);
}

/* ---- sockets and plain stdio ---- */

/* Feed one input byte to the line editor; true when a line is complete. */
static bool edit_byte(HmpSession *s, char c)
{
    bool after_cr = s->after_cr;

    s->after_cr = false;
    if (s->esc == ESC_SEEN) {
        s->esc = c == '[' || c == 'O' ? ESC_CSI : ESC_NONE;
        return false;
    }
    if (s->esc == ESC_CSI) {
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '~') {
            s->esc = ESC_NONE;
        }
        return false;
    }
    switch (c) {
    case '\n':
        return !after_cr;
    case '\r':
        s->after_cr = true;
        return true;
    case 0x7f:
    case '\b':
        if (s->line->len) {
            g_string_truncate(s->line, s->line->len - 1);
        }
        return false;
    case 0x1b:
        s->esc = ESC_SEEN;
        return false;
    default:
        if ((unsigned char)c >= 0x20 || c == '\t') {
            g_string_append_c(s->line, c);
        }
        return false;
    }
}

static void process_unread(Monitor *mon)
{
    HmpSession *s = session_of(mon);
    size_t used = 0;

    while (s && !s->suspended && !mon->closing && used < s->unread->len) {
        if (!edit_byte(s, s->unread->str[used++])) {
            continue;
        }
        g_autofree char *line = g_strdup(s->line->str);
        g_string_truncate(s->line, 0);
        monitor_write(mon, line, strlen(line));
        monitor_write(mon, "\r\n", 2);
        run_line(mon, line);
        s = session_of(mon);         /* still ours: closing is only flagged */
        if (s && !s->suspended && !mon->closing) {
            monitor_write(mon, HMP_PROMPT, strlen(HMP_PROMPT));
        }
    }
    if (s) {
        g_string_erase(s->unread, 0, used);
    }
}

static void hmp_opened(Monitor *mon)
{
    HmpSession *s = g_new0(HmpSession, 1);

    s->line = g_string_new(NULL);
    s->unread = g_string_new(NULL);
    mon->proto = s;
    monitor_puts(mon, HMP_BANNER);
    monitor_write(mon, HMP_PROMPT, strlen(HMP_PROMPT));
}

static void hmp_input(Monitor *mon, const char *buf, size_t len)
{
    HmpSession *s = session_of(mon);

    if (!s) {
        return;
    }
    g_string_append_len(s->unread, buf, len);
    process_unread(mon);
}

static void session_free(HmpSession *s)
{
    if (s->source) {
        g_source_remove(s->source);
    }
    g_string_free(s->line, TRUE);
    g_string_free(s->unread, TRUE);
    g_free(s);
}

static void hmp_closed(Monitor *mon)
{
    HmpSession *s = session_of(mon);

    if (s) {
        session_free(s);
        mon->proto = NULL;
    }
}

static const MonitorServerOps hmp_server_ops = {
    .opened = hmp_opened,
    .input = hmp_input,
    .closed = hmp_closed,
};

/* ---- the readline console ---- */

static gboolean rl_stdin_ready(gint fd, GIOCondition cond, gpointer opaque);

static void rl_stop_reading(void)
{
    if (rl_watch) {
        g_source_remove(rl_watch);
        rl_watch = 0;
    }
    rl_callback_handler_remove();
}

static void rl_line(char *line);

static void rl_start_reading(void)
{
    rl_callback_handler_install(HMP_PROMPT, rl_line);
    if (!rl_watch) {
        rl_watch = g_unix_fd_add(STDIN_FILENO, G_IO_IN | G_IO_HUP | G_IO_ERR, rl_stdin_ready, NULL);
    }
}

static void rl_line(char *line)
{
    if (!line) {
        /* End of input: stop reading, keep the VM running. */
        rl_stop_reading();
        fputs("\n", stdout);
        fflush(stdout);
        return;
    }
    if (*line) {
        add_history(line);
    }
    run_line(rl_mon, line);
    free(line);
}

static gboolean rl_stdin_ready(gint fd, GIOCondition cond, gpointer opaque)
{
    rl_callback_read_char();
    return rl_watch ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

/* Completion: command names first, then `info`/`help` arguments. */
static GPtrArray *completion_words;
static guint completion_next;

static void add_names(const HmpCommand *table, const char *text)
{
    for (const HmpCommand *c = table; c->name; c++) {
        g_auto(GStrv) names = g_strsplit(c->name, "|", -1);
        for (char **n = names; *n; n++) {
            if (g_str_has_prefix(*n, text)) {
                g_ptr_array_add(completion_words, g_strdup(*n));
            }
        }
    }
}

static char *completion_generator(const char *text, int state)
{
    if (completion_words && completion_next < completion_words->len) {
        /* readline frees what we return: hand out malloc'ed copies */
        const char *w = g_ptr_array_index(completion_words, completion_next++);
        char *copy = malloc(strlen(w) + 1);
        if (copy) {
            strcpy(copy, w);
        }
        return copy;
    }
    return NULL;
}

static char **hmp_complete(const char *text, int start, int end)
{
    g_autofree char *before = g_strndup(rl_line_buffer, start);
    /* The words before the one being completed (empty tokens from repeated
     * blanks dropped; an empty line splits into no token at all). */
    g_auto(GStrv) tokens = g_strsplit_set(before, " \t", -1);
    const char *words[2] = { NULL, NULL };
    guint nwords = 0;
    for (char **t = tokens; *t; t++) {
        if (**t) {
            if (nwords < 2) {
                words[nwords] = *t;
            }
            nwords++;
        }
    }

    rl_attempted_completion_over = 1;   /* never fall back to file names */
    if (completion_words) {
        g_ptr_array_free(completion_words, TRUE);
    }
    completion_words = g_ptr_array_new_with_free_func(g_free);
    completion_next = 0;
    if (nwords == 0) {
        add_names(hmp_cmds, text);
    } else if (nwords == 1 && strcmp(words[0], "info") == 0) {
        add_names(hmp_info_cmds, text);
    } else if (nwords == 1 && (strcmp(words[0], "help") == 0 || strcmp(words[0], "?") == 0)) {
        add_names(hmp_cmds, text);
    } else {
        return NULL;
    }
    return rl_completion_matches(text, completion_generator);
}

/* The tty adds '\r' before '\n' itself (readline gives the terminal back
 * in cooked mode while a command runs): write "\r\n" as "\n". */
static void stdout_write(void *opaque, const char *buf, size_t len)
{
    size_t start = 0;

    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\r' && i + 1 < len && buf[i + 1] == '\n') {
            fd_write_full(STDOUT_FILENO, buf + start, i - start);
            start = i + 1;
        }
    }
    fd_write_full(STDOUT_FILENO, buf + start, len - start);
}

static void rl_restore_terminal(void)
{
    if (rl_mon) {
        rl_callback_handler_remove();
    }
}

static bool start_readline_console(void)
{
    HmpSession *s = g_new0(HmpSession, 1);

    if (rl_mon) {
        g_free(s);
        return false;
    }
    s->line = g_string_new(NULL);
    s->unread = g_string_new(NULL);
    s->readline = true;
    rl_mon = monitor_new(false, stdout_write, NULL);
    rl_mon->proto = s;
    rl_readline_name = "migvm";
    rl_catch_signals = 0;               /* SIGINT/SIGTERM belong to the main loop */
    rl_attempted_completion_function = hmp_complete;
    /* QEMU's line editor sends no bracketed-paste escapes; scripts driving a
     * pty should not see ESC[?2004h around every prompt. */
    rl_variable_bind("enable-bracketed-paste", "off");
    atexit(rl_restore_terminal);
    monitor_puts(rl_mon, HMP_BANNER);
    rl_start_reading();
    return true;
}

/* ---- suspend / resume ---- */

bool hmp_monitor_suspend(Monitor *mon)
{
    HmpSession *s = session_of(mon);

    if (!s || s->suspended) {
        return s != NULL;
    }
    s->suspended = true;
    if (s->readline) {
        rl_stop_reading();
    } else {
        monitor_suspend(mon);
    }
    return true;
}

static gboolean process_after_resume(gpointer opaque)
{
    Monitor *mon = opaque;
    HmpSession *s = session_of(mon);

    if (s) {
        s->source = 0;
    }
    process_unread(mon);
    return G_SOURCE_REMOVE;
}

void hmp_monitor_resume(Monitor *mon)
{
    HmpSession *s = session_of(mon);

    if (!s || !s->suspended) {
        return;
    }
    s->suspended = false;
    if (s->readline) {
        rl_start_reading();
        return;
    }
    monitor_resume(mon);
    if (!mon->closing) {
        monitor_write(mon, HMP_PROMPT, strlen(HMP_PROMPT));
        if (s->unread->len) {
            /* run lines that waited from the main loop, not from inside
             * the command that resumed us */
            s->source = g_idle_add(process_after_resume, mon);
        }
    }
}

void hmp_monitor_set_source(Monitor *mon, guint source_id)
{
    HmpSession *s = session_of(mon);

    if (s) {
        s->source = source_id;
    }
}

bool hmp_monitor_is_interactive(Monitor *mon)
{
    HmpSession *s = session_of(mon);
    return s && s->readline;
}

bool hmp_monitor_alive(Monitor *mon)
{
    HmpSession *s = session_of(mon);
    return s && !mon->closing;
}

/* ---- creation ---- */

bool monitor_init_hmp(const ChardevSpec *spec, Error **errp)
{
    if (spec->kind == CHARDEV_STDIO && isatty(STDIN_FILENO)) {
        if (!start_readline_console()) {
            error_setg(errp, "cannot use stdio for more than one monitor");
            return false;
        }
        return true;
    }
    return monitor_server_start(spec, false, &hmp_server_ops, errp);
}
