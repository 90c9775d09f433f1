/* cmd_table.h: every admin command, once. The broker builds its
 * dispatcher from this table, mqsh its help and tab completion, and
 * docs/control.md its command list. Include it after defining
 *
 *   CMD(name, usage, help, min_args, max_args, flags, complete, handler)
 *
 * min_args/max_args count the words after the command name (-1: any);
 * the dispatcher checks them and the permission flags, so handlers never
 * do. `complete` says what each argument position completes to, space
 * separated: kind (queue|topic|pubsub), dest, queue, pubsub, client,
 * durable, user, vhost, listing (what `list` takes), command, or - for
 * nothing. */

#ifndef CMD
#error "define CMD(name, usage, help, min, max, flags, complete, handler) before including cmd_table.h"
#endif

CMD("help", "help [COMMAND]",
    "List the commands, or show one command's usage and help.",
    0, 1, CMD_READ, "command", cmd_help)
CMD("list", "list [destinations|queues|topics|pubsubs|clients|subscriptions|durables|users|vhosts|permissions|bridges]",
    "List destinations (the default), one kind of them, clients, subscriptions, durable subscriptions, users, virtual hosts, permissions (users and permissions: admins only) or bridges.",
    0, 1, CMD_READ, "listing", cmd_list)
CMD("show", "show NAME | show client ID | show bridge NAME",
    "Show one destination (depth, unacknowledged, consumers, rates, children; vhost=V for another virtual host), one client or one bridge.",
    1, 2, CMD_READ, "dest client", cmd_show)
CMD("stats", "stats",
    "Broker-wide figures: connections, messages in and out per second, memory, uptime.",
    0, 0, CMD_READ, "", cmd_stats)
CMD("create", "create queue|topic|pubsub NAME [persistent] [max-length=N] [max-bytes=SIZE] "
              "[overflow=drop-oldest|reject] [ttl=DURATION] [max-deliveries=N] [dead-letter=DEST|none] [vhost=V]",
    "Create a destination, or update a queue's options. Queue options apply to queues only.",
    2, 10, CMD_WRITE, "kind - -", cmd_create)
CMD("delete", "delete NAME [force] [vhost=V]",
    "Delete a destination and everything it holds; with subscribers only with 'force' (they are disconnected).",
    1, 3, CMD_WRITE, "dest", cmd_delete)
CMD("purge", "purge QUEUE [vhost=V]",
    "Remove every message a queue holds (deliveries in flight are not touched).",
    1, 2, CMD_WRITE, "queue", cmd_purge)
CMD("attach", "attach PUBSUB CHILD [vhost=V]",
    "Make CHILD (created as needed) receive a copy of every later message sent to PUBSUB.",
    2, 3, CMD_WRITE, "pubsub dest", cmd_attach)
CMD("detach", "detach PUBSUB CHILD [vhost=V]",
    "Stop copying PUBSUB's messages to CHILD.",
    2, 3, CMD_WRITE, "pubsub dest", cmd_detach)
CMD("pause", "pause QUEUE [vhost=V]",
    "Stop delivering from a queue; it still accepts messages.",
    1, 2, CMD_WRITE, "queue", cmd_pause)
CMD("resume", "resume QUEUE [vhost=V]",
    "Deliver from a paused queue again.",
    1, 2, CMD_WRITE, "queue", cmd_resume)
CMD("disconnect", "disconnect CLIENT [REASON...]",
    "Close a client connection with an ERROR carrying the reason; its unacknowledged messages go back to their queues.",
    1, -1, CMD_WRITE, "client", cmd_disconnect)
CMD("redrive", "redrive DEAD-LETTER-QUEUE [TARGET] [vhost=V]",
    "Move every message of a dead-letter queue back to the queue it came from, or to TARGET.",
    1, 3, CMD_WRITE, "queue dest", cmd_redrive)
CMD("unsubscribe", "unsubscribe DURABLE [vhost=V]",
    "Remove a durable topic subscription (as 'list durables' names it) and the messages it holds.",
    1, 2, CMD_WRITE, "durable", cmd_unsubscribe)
CMD("bridge", "bridge add NAME direction=out|in from=DEST hosts=HOST:PORT[,...] [OPTION=VALUE...] | "
              "bridge delete NAME | bridge pause NAME | bridge resume NAME",
    "Add a bridge to or from another broker (options as in docs/bridges.md; kept across restarts), delete one, "
    "or pause and resume one.",
    2, -1, CMD_WRITE, "- bridge", cmd_bridge)
CMD("user", "user add NAME [admin] [certificate] | user passwd NAME | user delete NAME | user list",
    "Add a user (mqsh asks for the password and sends only its hash; other ways in give password=HASH as printed by mqbroker --hash-password, or 'certificate' for a user who logs in with a TLS client certificate only), change a password, delete a user (its connections are closed), or list users with where each comes from.",
    1, 4, CMD_WRITE, "- user", cmd_user)
CMD("permit", "permit USER [vhost=V] CONFIGURE SEND CONSUME",
    "Set USER's grants on a virtual host (the default one unless vhost=V): three regular expressions that a destination's whole name must match, to create or delete it, to send to it, to consume from it. \"\" allows nothing, '.*' everything.",
    4, 5, CMD_WRITE, "user - - -", cmd_permit)
CMD("unpermit", "unpermit USER [vhost=V]",
    "Take away USER's grants on a virtual host (the default one unless vhost=V).",
    1, 2, CMD_WRITE, "user", cmd_unpermit)
CMD("vhost", "vhost add NAME | vhost delete NAME [force] | vhost list",
    "Add a virtual host, delete one (one with destinations or clients only with 'force': its destinations and their messages go, its clients are disconnected), or list them.",
    1, 3, CMD_WRITE, "- vhost", cmd_vhost)
CMD("reload", "reload",
    "Reload the configuration file and its Lua rules; a file that does not load leaves the running configuration in force.",
    0, 0, CMD_WRITE, "", cmd_reload)
CMD("loglevel", "loglevel [0-4]",
    "Show or set the log level: 0 none, 1 errors, 2 warnings, 3 all, 4 debug.",
    0, 1, CMD_WRITE, "", cmd_loglevel)
CMD("logreopen", "logreopen",
    "Reopen the log file (-g) after logrotate moved it; unlike SIGHUP, the configuration is not reloaded.",
    0, 0, CMD_WRITE, "", cmd_logreopen)
CMD("config", "config [OPTION]",
    "Show the configuration options in force with their defaults and bounds, or one of them. Change them in the file and reload.",
    0, 1, CMD_READ, "-", cmd_config)
CMD("shutdown", "shutdown",
    "Stop the broker gracefully. Refused when it runs as a persistent server (-s).",
    0, 0, CMD_WRITE | CMD_DANGER, "", cmd_shutdown)
CMD("events", "events",
    "Stream broker events (one JSON object per line) until the connection closes.",
    0, 0, CMD_READ | CMD_STREAM, "", cmd_events)
CMD("send", "send DEST BODY [NAME=VALUE ...] [vhost=V]",
    "Publish BODY to DEST as the acting administrator, through the same checks and routing as a STOMP SEND; each NAME=VALUE is a header (persistent=true, expiration=MS, ...).",
    2, -1, CMD_WRITE, "dest", cmd_send)
