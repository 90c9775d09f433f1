/* repl.c: readline's callback interface in a poll loop, history, completion. */
#include "repl.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "script.h"
#include "common/util.h"

/* History files keep this many lines. */
#define REPL_HISTORY_MAX 1000

static volatile sig_atomic_t got_sigint;
static volatile sig_atomic_t got_sigwinch;

static struct {
	char *history_path;		/* owned; NULL: no history file */
	repl_complete_fn complete;
	void *arg;
	char *line;			/* the line the handler received */
	bool done;			/* the handler ran: line is set (NULL at EOF) */
	struct complete_result cands;	/* the completion being offered */
	size_t next;			/* the generator's position in cands */
} r;

static void on_sigint(int sig)
{
	(void)sig;
	got_sigint = 1;
}

static void on_sigwinch(int sig)
{
	(void)sig;
	got_sigwinch = 1;
}

void repl_signals_init(bool terminal)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a blocking call returns EINTR and looks at the flag. */
	sa.sa_handler = on_sigint;
	sigaction(SIGINT, &sa, NULL);
	if (terminal) {
		sa.sa_handler = on_sigwinch;
		sigaction(SIGWINCH, &sa, NULL);
	}
}

volatile sig_atomic_t *repl_interrupt_flag(void)
{
	return &got_sigint;
}

static char *generator(const char *text, int state)
{
	(void)text;	/* complete_words() already kept only what fits */
	if (state == 0)
		r.next = 0;
	if (r.next < r.cands.n)
		return xstrdup(r.cands.words[r.next++]);
	return NULL;
}

static char **attempt(const char *text, int start, int end)
{
	char *before;
	size_t off;
	char **matches = NULL;

	(void)end;
	/* A word that opens with a quote starts after it; the quote is not
	 * part of what came before. */
	if (start > 0 && strchr(rl_completer_quote_characters, rl_line_buffer[start - 1]))
		start--;
	before = xstrndup(rl_line_buffer, (size_t)start);
	off = script_last_offset(before);
	complete_result_fini(&r.cands);
	r.complete(r.arg, before + off, text, &r.cands);
	free(before);
	if (r.cands.files) {
		rl_attempted_completion_over = 0;	/* readline's own file names */
		return NULL;
	}
	rl_attempted_completion_over = 1;	/* never file names where they make no sense */
	if (r.cands.no_space)
		rl_completion_suppress_append = 1;
	if (r.cands.n)
		matches = rl_completion_matches(text, generator);
	return matches;
}

void repl_init(const char *history_path, repl_complete_fn complete, void *arg)
{
	r.history_path = history_path ? xstrdup(history_path) : NULL;
	r.complete = complete;
	r.arg = arg;
	rl_readline_name = "mqsh";	/* for $if mqsh in ~/.inputrc */
	rl_catch_signals = 0;		/* ours: see repl.h */
	rl_catch_sigwinch = 0;
	rl_attempted_completion_function = attempt;
	/* Destination names hold '/', '.', '-', '=' ...: only blanks and
	 * the command separator end a word. */
	rl_completer_word_break_characters = " \t\n;";
	rl_completer_quote_characters = "\"'";
	using_history();
	if (r.history_path)
		read_history(r.history_path);
}

static void on_line(char *line)
{
	r.line = line;
	r.done = true;
	/* Removing the handler restores the terminal for the command's
	 * output; the next repl_readline() installs it again. */
	rl_callback_handler_remove();
}

/* Ctrl-C at the prompt: show it, forget the line, start a fresh one. */
static void drop_line(const char *prompt)
{
	rl_point = rl_end;
	rl_redisplay();
	rl_echo_signal_char(SIGINT);
	rl_free_line_state();
	rl_callback_sigcleanup();
	rl_callback_handler_remove();
	fputc('\n', rl_outstream);
	fflush(rl_outstream);
	rl_callback_handler_install(prompt, on_line);
}

char *repl_readline(const char *prompt)
{
	sigset_t block, orig;

	got_sigint = 0;
	r.done = false;
	r.line = NULL;
	/* Signals stay blocked except inside ppoll(), which unblocks them
	 * atomically: none can slip in between looking at the flags and
	 * going to sleep. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGWINCH);
	sigprocmask(SIG_BLOCK, &block, &orig);
	rl_callback_handler_install(prompt, on_line);
	while (!r.done) {
		struct pollfd p = { fileno(rl_instream), POLLIN, 0 };
		if (got_sigint) {
			got_sigint = 0;
			drop_line(prompt);
			continue;
		}
		if (got_sigwinch) {
			got_sigwinch = 0;
			rl_resize_terminal();
			continue;
		}
		if (ppoll(&p, 1, NULL, &orig) < 0) {
			if (errno == EINTR)
				continue;
			rl_callback_handler_remove();
			break;	/* the terminal is gone: end of input */
		}
		rl_callback_read_char();
	}
	sigprocmask(SIG_SETMASK, &orig, NULL);
	return r.line;
}

void repl_history_add(const char *line)
{
	HIST_ENTRY *last;

	if (!line[strspn(line, " \t")])
		return;
	last = history_length ? history_get(history_base + history_length - 1) : NULL;
	if (last && strcmp(last->line, line) == 0)
		return;
	add_history(line);
	if (r.history_path && append_history(1, r.history_path) != 0)
		write_history(r.history_path);	/* the first line: no file yet */
}

void repl_fini(void)
{
	if (r.history_path)
		history_truncate_file(r.history_path, REPL_HISTORY_MAX);
	clear_history();
	complete_result_fini(&r.cands);
	free(r.history_path);
	r.history_path = NULL;
}
