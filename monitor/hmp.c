/*
 * HMP line dispatch, help, and output.
 *
 * A line is "NAME ARGS": NAME is looked up among the names and aliases of
 * hmp_cmds; a command with a sub-table (`info`) takes the next word as a
 * sub-command name. ARGS are parsed against the command's args_type
 * (hmp-parse.h); a parse error prints its message, then
 *   Try "help <what was typed up to the command name>" for more information
 * Output uses "\r\n" line ends everywhere, also for human-monitor-command.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hmp-int.h"

/* ---- output ---- */

void monitor_puts(Monitor *mon, const char *text)
{
    g_autoptr(GString) buf = NULL;

    if (!mon) {
        fputs(text, stderr);
        return;
    }
    if (mon->is_qmp) {
        return;                 /* QMP sessions carry no HMP text */
    }
    buf = g_string_sized_new(strlen(text) + 16);
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, "\n");       /* whole lines at once, not byte by byte */
        g_string_append_len(buf, p, n);
        p += n;
        if (*p == '\n') {
            g_string_append_len(buf, "\r\n", 2);
            p++;
        }
    }
    if (buf->len) {
        monitor_write(mon, buf->str, buf->len);
    }
}

void monitor_printf(Monitor *mon, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *text = NULL;

    va_start(ap, fmt);
    text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    monitor_puts(mon, text);
}

void hmp_handle_error(Monitor *mon, Error *err)
{
    if (err) {
        monitor_printf(mon, "Error: %s\n", error_get_pretty(err));
        error_free(err);
    }
}

/* ---- lookup ---- */

/* Does `name` equal one of the '|'-separated names in `list`? */
static bool name_matches(const char *list, const char *name, size_t len)
{
    const char *p = list;

    for (;;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncmp(p, name, len) == 0) {
            return true;
        }
        if (!bar) {
            return false;
        }
        p = bar + 1;
    }
}

static const HmpCommand *find_command(const HmpCommand *table, const char *name, size_t len)
{
    for (const HmpCommand *c = table; c->name; c++) {
        if (name_matches(c->name, name, len)) {
            return c;
        }
    }
    return NULL;
}

static const char *skip_blanks(const char *p)
{
    while (*p && isspace((unsigned char)*p)) {
        p++;
    }
    return p;
}

/* Find the command named at *pp (recursing into sub-tables); *pp moves past
 * the name(s) and following blanks. NULL for an empty line (silently) or an
 * unknown name (message printed, naming everything typed so far). */
static const HmpCommand *parse_command(Monitor *mon, const char *line_start, const char **pp,
                                       const HmpCommand *table)
{
    const char *name = skip_blanks(*pp);
    const char *end = name;
    const HmpCommand *cmd;

    while (*end && !isspace((unsigned char)*end)) {
        end++;
    }
    if (end == name) {
        return NULL;
    }
    cmd = find_command(table, name, end - name);
    if (!cmd) {
        monitor_printf(mon, "unknown command: '%.*s'\n", (int)(end - line_start), line_start);
        return NULL;
    }
    *pp = skip_blanks(end);
    if (cmd->sub_table && **pp) {
        return parse_command(mon, line_start, pp, cmd->sub_table);
    }
    return cmd;
}

void hmp_handle_command(Monitor *mon, const char *line)
{
    const char *p = line;
    const HmpCommand *cmd = parse_command(mon, line, &p, hmp_cmds);
    g_autoptr(GString) err = g_string_new(NULL);
    HmpArgs *args;

    if (!cmd) {
        return;
    }
    args = hmp_args_parse(cmd->name, cmd->args_type, p, err);
    if (!args) {
        const char *end = p;
        while (end > line && isspace((unsigned char)end[-1])) {
            end--;
        }
        monitor_puts(mon, err->str);
        monitor_printf(mon, "Try \"help %.*s\" for more information\n", (int)(end - line), line);
        return;
    }
    cmd->cmd(mon, args);
    hmp_args_free(args);
}

/* ---- help ---- */

static gint compare_commands(gconstpointer a, gconstpointer b)
{
    const HmpCommand *x = *(const HmpCommand *const *)a;
    const HmpCommand *y = *(const HmpCommand *const *)b;
    return strcmp(x->name, y->name);
}

/* "PREFIXNAME PARAMS -- HELP\n" */
static void append_help_line(GString *out, const char *prefix, const HmpCommand *c)
{
    g_string_append(out, prefix);
    g_string_append(out, c->name);
    g_string_append_c(out, ' ');
    g_string_append(out, c->params);
    g_string_append(out, " -- ");
    g_string_append(out, c->help);
    g_string_append_c(out, '\n');
}

static void print_help_line(Monitor *mon, const char *prefix, const HmpCommand *c)
{
    g_autoptr(GString) out = g_string_new(NULL);

    append_help_line(out, prefix, c);
    monitor_puts(mon, out->str);
}

/* The whole table in one write: a line at a time, `help` cost a formatted
 * string and a monitor write per command. */
static void print_help_table(Monitor *mon, const char *prefix, const HmpCommand *table)
{
    g_autoptr(GPtrArray) sorted = g_ptr_array_new();
    g_autoptr(GString) out = g_string_sized_new(8192);

    for (const HmpCommand *c = table; c->name; c++) {
        g_ptr_array_add(sorted, (gpointer)c);
    }
    g_ptr_array_sort(sorted, compare_commands);
    for (guint i = 0; i < sorted->len; i++) {
        append_help_line(out, prefix, g_ptr_array_index(sorted, i));
    }
    monitor_puts(mon, out->str);
}

void hmp_help_cmd(Monitor *mon, const char *name)
{
    g_autoptr(GString) err = g_string_new(NULL);
    g_autoptr(GPtrArray) words = hmp_split_words(name ? name : "", err);
    const HmpCommand *table = hmp_cmds;
    g_autoptr(GString) prefix = g_string_new(NULL);

    if (!words) {
        monitor_puts(mon, err->str);
        return;
    }
    if (words->len == 0) {
        print_help_table(mon, "", hmp_cmds);
        return;
    }
    for (guint i = 0; i < words->len; i++) {
        const char *w = g_ptr_array_index(words, i);
        const HmpCommand *c = find_command(table, w, strlen(w));

        if (!c) {
            monitor_printf(mon, "unknown command: '%s%s'\n", prefix->str, w);
            return;
        }
        if (c->sub_table && i + 1 == words->len) {
            g_string_append_printf(prefix, "%s ", w);
            print_help_table(mon, prefix->str, c->sub_table);
            return;
        }
        if (!c->sub_table) {
            print_help_line(mon, prefix->str, c);
            return;                     /* words after a command are ignored */
        }
        g_string_append_printf(prefix, "%s ", w);
        table = c->sub_table;
    }
}

/* ---- human-monitor-command ---- */

char *hmp_run_capture(const char *cmdline, int cpu_index)
{
    Monitor *mon = monitor_new_capture();
    Monitor *prev = monitor_set_cur(mon);
    char *out;

    mon->cpu_index = cpu_index;

    hmp_handle_command(mon, cmdline);
    monitor_set_cur(prev);
    out = monitor_capture_take(mon);
    monitor_free(mon);
    return out;
}
