/* stomp.c: the handler table, and what every handler shares. */
#include "stomp/stomp.h"

#include <string.h>

#include "common/log.h"
#include "stomp/conn.h"
#include "stomp/handlers.h"

const char *stomp_required(struct conn *c, const struct frame *f, const char *name, const char *receipt)
{
	/* The known ones are already found; anything else is looked up. */
	const char *v = strcmp(name, "destination") == 0 ? frame_known(f, HDR_DESTINATION)
	              : strcmp(name, "transaction") == 0 ? frame_known(f, HDR_TRANSACTION)
	              : frame_get(f, name);
	if (!v || !*v) {
		conn_close(c, receipt, "%s frame has no %s header", stomp_cmd(f), name);
		return NULL;
	}
	return v;
}

static void handle_server_frame(struct conn *c, struct frame *f, const char *receipt)
{
	conn_close(c, receipt, "unexpected %s frame: only a server sends it", stomp_cmd(f));
}

static const stomp_handler handlers[CMD_COUNT] = {
	[CMD_CONNECT] = handle_connect,
	[CMD_STOMP] = handle_connect,
	[CMD_SEND] = handle_send,
	[CMD_SUBSCRIBE] = handle_subscribe,
	[CMD_UNSUBSCRIBE] = handle_unsubscribe,
	[CMD_ACK] = handle_ack,
	[CMD_NACK] = handle_ack,
	[CMD_BEGIN] = handle_begin,
	[CMD_COMMIT] = handle_commit_abort,
	[CMD_ABORT] = handle_commit_abort,
	[CMD_DISCONNECT] = handle_disconnect,
	[CMD_CONNECTED] = handle_server_frame,
	[CMD_MESSAGE] = handle_server_frame,
	[CMD_RECEIPT] = handle_server_frame,
	[CMD_ERROR] = handle_server_frame,
};

void stomp_handle(struct conn *c, struct frame *f)
{
	const char *receipt = frame_known(f, HDR_RECEIPT);
	if (receipt && !*receipt)
		receipt = NULL;
	if (c->state == CONN_HANDSHAKE && f->cmd != CMD_CONNECT && f->cmd != CMD_STOMP) {
		conn_close(c, receipt, "expected CONNECT or STOMP as the first frame, got %s", stomp_cmd(f));
		return;
	}
	if (log_enabled(LOG_DEBUG))
		log_debug(CONN_FMT ": %s frame, %u headers, %zu body bytes", CONN_ARGS(c), stomp_cmd(f), f->nhdrs,
		          f->body_len);
	handlers[f->cmd](c, f, receipt);
}
