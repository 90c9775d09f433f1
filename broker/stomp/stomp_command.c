/* stomp_command.c: the admin face over STOMP. A SEND to /command/NAME
 * runs the admin command NAME with the body as its arguments (admin/cmd.h,
 * the one command table). The reply goes to the reply-to destination as
 * a JSON message, published like any other, and rides on the RECEIPT as
 * status and message headers. A failed command is a reply, not an ERROR:
 * the admin connection stays open. */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "admin/cmd.h"
#include "common/cmdline.h"
#include "common/frame_write.h"
#include "common/log.h"
#include "common/util.h"
#include "core/auth.h"
#include "core/broker.h"
#include "core/publish.h"
#include "stomp/conn.h"
#include "stomp/handlers.h"

static void deferred_shutdown(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	broker_shutdown(arg, "shutdown command");
}

/* Publishes the command's reply to reply_to; false with the reason in err
 * when it could not be sent (a refusal, not a topic nobody reads). */
static bool send_reply(struct conn *c, struct frame *f, const char *reply_to, const struct cmd_reply *r,
                       char *err, size_t errlen)
{
	struct sbuf json;
	char st[16], corr[501];
	const char *corr_in = frame_get(f, "correlation-id");
	struct frame_hdr hdrs[4];
	unsigned n = 0;
	struct publish_result pr;
	struct draft d;

	sbuf_init(&json);
	cmd_reply_json(r, &json);
	snprintf(st, sizeof st, "%d", r->status);
	hdrs[n++] = (struct frame_hdr){ "status", st, 6, (uint32_t)strlen(st) };
	hdrs[n++] = (struct frame_hdr){ "message", (char *)r->message, 7, (uint32_t)strlen(r->message) };
	hdrs[n++] = (struct frame_hdr){ "content-type", "application/json", 12, 16 };
	if (corr_in) {
		snprintf(corr, sizeof corr, "%s", corr_in);	/* bounded, as documented */
		hdrs[n++] = (struct frame_hdr){ "correlation-id", corr, 14, (uint32_t)strlen(corr) };
	}
	d = (struct draft){ .dest = reply_to, .hdrs = hdrs, .nhdrs = n, .body = json.buf ? json.buf : "",
	                    .body_len = json.len };
	/* A command that closed its own connection (disconnect of itself)
	 * has released its temporary queues: none may be made again. */
	publish(c->b, &c->sink.who, c->state == CONN_OPEN ? &c->sink : NULL, &d, &pr);
	sbuf_fini(&json);
	if (pr.status == PUBLISH_REFUSED) {
		snprintf(err, errlen, "%s", pr.err);
		return false;
	}
	return true;
}

void handle_command_send(struct conn *c, struct frame *f, const char *name, const char *receipt)
{
	struct broker *b = c->b;
	const char *reply_to = frame_known(f, HDR_REPLY_TO);
	char err[400], who[160], reply_err[400] = "";
	struct cmd_reply r;
	struct sbuf line;

	if (!auth_allow(b, &c->sink.who, AUTHZ_ADMIN, NULL, err, sizeof err)) {
		conn_close(c, receipt, "%s: %s", name, err);
		return;
	}
	if (memchr(f->body, 0, f->body_len)) {
		conn_close(c, receipt, "%s: the arguments in the body contain a NUL byte", name);
		return;
	}
	sbuf_init(&line);
	cmdline_quote(&line, name + strlen("/command/"));
	sbuf_addc(&line, ' ');
	sbuf_add(&line, f->body, f->body_len);
	snprintf(who, sizeof who, CONN_FMT, CONN_ARGS(c));
	{
		struct cmd_ctx ctx = { b, true, who, &c->sink.who };
		cmd_reply_init(&r);
		cmd_exec_line(&ctx, line.buf, &r);
	}
	sbuf_fini(&line);
	if (r.stream)
		cmd_fail(&r, CMD_BAD_ARG, "events: subscribe to /command/events to receive events");
	if (reply_to && *reply_to && !send_reply(c, f, reply_to, &r, err, sizeof err)) {
		log_warn(CONN_FMT ": reply of %s to '%s' not sent: %s", CONN_ARGS(c), name, reply_to, err);
		snprintf(reply_err, sizeof reply_err, "%s", err);	/* told on the receipt too */
	}
	if (receipt && c->state == CONN_OPEN) {
		struct evbuffer *out = conn_output(c);
		char status[16];
		snprintf(status, sizeof status, "%d", r.status);
		frame_put_cmd(out, CMD_RECEIPT);
		frame_put_header(out, c->version, "receipt-id", receipt);
		frame_put_header(out, c->version, "status", status);
		frame_put_header(out, c->version, "message", r.message);
		if (reply_err[0])
			frame_put_header(out, c->version, "reply-error", reply_err);
		frame_put_body(out, NULL, 0, false);
		c->frames_out++;
		b->stats.frames_out++;
		b->stats.receipts++;
		conn_wrote(c);
	}
	if (r.shutdown)
		event_base_once(b->base, -1, EV_TIMEOUT, deferred_shutdown, b, NULL);
	cmd_reply_fini(&r);
}
