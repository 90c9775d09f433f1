/* scenario_int.h: what the scenario runner's files share, and nobody else.
 *
 *   scenario.c         scenario_run(): one run, its event loop, its ticks, its end
 *   scenario_lua.c     the Lua API; the only file that includes lua.h
 *   scenario_load.c    producers and consumers: state machines over mqclient
 *   scenario_broker.c  brokers the scenario owns (fork, exec, kill, restart)
 *                      or attaches to, and admin commands on their control socket
 *   scenario_track.c   stamps, what each sink received from each producer, checks
 *   scenario_hist.c    latency histograms
 *   scenario_report.c  the report: its numbers, one line, JSON
 *
 * Names shared between these files start with scn_; the public interface
 * is scenario.h. Everything runs on one thread: the Lua script and the
 * event loop take turns (Lua runs only while the loop is stopped), so no
 * counter here needs a lock. */
#ifndef MQ_SCENARIO_INT_H
#define MQ_SCENARIO_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "mqclient.h"
#include "scenario.h"
#include "common/util.h"

struct event;
struct event_base;
struct json;

static inline uint64_t scn_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- latency histograms (scenario_hist.c) ------------------------------ */

/* Log-linear buckets in the manner of HdrHistogram: values below 256 have a
 * bucket each; above, every power of two is split into 128 buckets, so a
 * value is known to within 1/128 (0.8 %). Recording is two shifts and an
 * increment, whatever the value, so a consumer can record every message. */
#define SCN_HIST_SUB 128
#define SCN_HIST_BUCKETS (2 * SCN_HIST_SUB + (64 - 8) * SCN_HIST_SUB)

struct scn_hist {
	uint64_t count;
	uint64_t min, max;		/* exact; min is UINT64_MAX while empty */
	double sum;			/* for the mean */
	uint64_t buckets[SCN_HIST_BUCKETS];
};

struct scn_hist *scn_hist_new(void);
void scn_hist_free(struct scn_hist *h);
void scn_hist_reset(struct scn_hist *h);
void scn_hist_record(struct scn_hist *h, uint64_t v);
void scn_hist_merge(struct scn_hist *dst, const struct scn_hist *src);
/* The value at percentile p (0 < p <= 100): the middle of the bucket that
 * holds the ceil(p% of count)-th smallest value, kept within [min, max].
 * 0 when empty. p = 100 is the exact maximum. */
uint64_t scn_hist_percentile(const struct scn_hist *h, double p);
double scn_hist_mean(const struct scn_hist *h);

/* ---- stamps and sequence tracking (scenario_track.c) ------------------- */

/* Every message a producer posts carries one header,
 *   mq-stamp:RUN.PRODUCER.SEQ.SENT_NS
 * RUN tells this run's messages from leftovers of another (a persistent
 * queue, a peer broker); PRODUCER is the connection's id (1, 2, ...), SEQ
 * counts its posts from 1, SENT_NS is CLOCK_MONOTONIC at the post, which
 * every process on the machine shares. One header parsed in one pass costs
 * less than three looked up by name. */
#define SCN_STAMP_HEADER "mq-stamp"
#define SCN_STAMP_MAX 80

struct scn_stamp {
	uint32_t run;
	uint32_t producer;
	uint64_t seq;
	uint64_t sent_ns;
};

size_t scn_stamp_format(char *buf, const struct scn_stamp *st);	/* buf: SCN_STAMP_MAX */
bool scn_stamp_parse(const char *s, struct scn_stamp *st);

/* A growable set of sequence numbers, one bit each. */
struct scn_bits {
	uint64_t *w;		/* owned */
	size_t nwords;
	uint64_t count;		/* bits set */
};
void scn_bits_set(struct scn_bits *b, uint64_t i);
bool scn_bits_test(const struct scn_bits *b, uint64_t i);
void scn_bits_fini(struct scn_bits *b);

/* One producer connection as the checks see it. */
struct scn_source {
	uint32_t id;		/* stamped on every message; 1, 2, ... */
	uint64_t sent;		/* seqs 1..sent were posted */
	struct scn_bits acked;	/* seqs whose RECEIPT arrived (posts made with receipts) */
	const char *dest;	/* borrowed: the group's destination */
	const void *broker;	/* borrowed; identity only */
	const char *group;	/* borrowed: "producers 1", for messages */
};

/* What one sink received from one producer. Seqs up to `baseline` were
 * sent before a fan-out group's subscriptions were all in place: a topic
 * owes them to nobody, so they are neither expected nor counted. Seqs from
 * baseline + 1 to base - 1 arrived at least `copies` times each and need
 * no memory; from base on, cnt[] counts arrivals, saturating at 255.
 * Messages mostly arrive in order, so base follows closely and the window
 * stays small. */
struct scn_seqs {
	uint64_t baseline;	/* 0 for queues */
	uint64_t base;		/* > baseline */
	uint8_t *cnt;		/* owned; cnt[i] for seq base + i */
	size_t len, cap;
	uint64_t arrivals;	/* every arrival of this producer's messages */
	uint64_t dup_below;	/* arrivals beyond copies folded into base, or past 255 */
	uint64_t out_of_order;	/* first deliveries older than one already seen on that connection */
	uint64_t first_ooo;	/* the first such seq */
	uint64_t first_dup;	/* the first seq that arrived more than copies times */
};

/* A sink is what a check compares producers with: the consumers groups
 * that share a queue (each message should reach one of them), or one
 * fan-out group (each message should reach each of its connections). */
struct scn_sink {
	const void *broker;	/* borrowed; identity only */
	char *dest;		/* owned */
	bool fanout;
	bool open;		/* owed messages: a queue always, a fan-out group once all subscribed */
	unsigned copies;	/* arrivals each message should have: 1, or the fan-out group's n */
	struct scn_seqs **by_prod;	/* owned; by producer id, NULL until one arrives */
	size_t nprod;
	char *name;		/* owned: "consumers 1" or "consumers 1+2", for messages */
};

struct scn_sink *scn_sink_new(const void *broker, const char *dest, bool fanout, unsigned copies,
                              const char *name);
void scn_sink_free(struct scn_sink *k);
/* One arrival of (producer, seq), processed by a consumer. */
void scn_sink_add(struct scn_sink *k, uint32_t producer, uint64_t seq);
/* A fan-out group is subscribed: the producer's seqs up to `sent` are not
 * owed to it. */
void scn_sink_set_baseline(struct scn_sink *k, uint32_t producer, uint64_t sent);
/* From now on the sink is owed messages (see open). */
void scn_sink_open(struct scn_sink *k);
void scn_sink_order_error(struct scn_sink *k, uint32_t producer, uint64_t seq);
const struct scn_seqs *scn_sink_get(const struct scn_sink *k, uint32_t producer);
/* Distinct seqs in [first, last] that arrived at least once. */
uint64_t scn_sink_distinct(const struct scn_sink *k, uint32_t producer, uint64_t first, uint64_t last);
/* True when the source feeds the sink: same broker and destination, or
 * one of its messages arrived there (a pubsub's children). */
bool scn_sink_fed_by(const struct scn_sink *k, const struct scn_source *src);

/* Order per producer on one consumer connection: the last seq seen from
 * each producer. */
struct scn_order {
	uint64_t *last;		/* owned; by producer id */
	size_t n;
};
/* False (and the sink told) when seq is not above the last one seen. */
bool scn_order_check(struct scn_order *o, struct scn_sink *k, uint32_t producer, uint64_t seq);
void scn_order_fini(struct scn_order *o);

/* What the checks found, over sources x sinks. */
struct scn_tally {
	uint64_t expected;	/* copies the sinks should have: sent (or acked) x copies */
	uint64_t arrived;	/* of those, how many arrived (at most copies per message) */
	uint64_t lost;		/* copies missing */
	uint64_t duplicated;	/* arrivals beyond copies */
	uint64_t out_of_order;
	/* the first example of each, for the message */
	uint32_t lost_prod, dup_prod, ooo_prod;
	uint64_t lost_seq, dup_seq, ooo_seq;
	const char *lost_sink;
};

enum scn_scope {
	SCN_ALL_SENT,		/* every message posted */
	SCN_ACKED_ONLY,		/* only messages whose RECEIPT arrived */
};

/* Adds what `k` received of `src`'s messages to t. */
void scn_tally_add(struct scn_tally *t, const struct scn_sink *k, const struct scn_source *src,
                   enum scn_scope scope);

enum scn_check {
	SCN_EXACTLY_ONCE,	/* nothing lost, nothing duplicated */
	SCN_AT_LEAST_ONCE,	/* nothing lost */
	SCN_IN_ORDER,		/* each connection saw each producer's first deliveries in order */
};
/* Whether the check holds over t; either way one line saying what was
 * found, naming the first lost, duplicated or reordered message. */
bool scn_check(enum scn_check c, const struct scn_tally *t, char *buf, size_t len);
/* True when every message of src reached k as often as it should. */
bool scn_sink_drained(const struct scn_sink *k, const struct scn_source *src);

/* ---- brokers (scenario_broker.c) ---------------------------------------- */

struct scn_run;

struct scn_broker {
	struct scn_run *run;	/* borrowed */
	unsigned index;		/* 1, 2, ...: "broker 1" */
	bool owned;		/* started by the scenario (else attached) */
	char *host;		/* owned */
	uint16_t port;
	char *control_socket;	/* owned; NULL: no admin (a peer broker) */
	char *login, *passcode, *vhost;	/* owned; defaults for the groups; may be NULL */

	/* owned brokers */
	char *exe;		/* owned: the mqbroker binary */
	char **args;		/* owned, NULL-terminated: the scenario's extra arguments */
	char *config;		/* owned: -f path, or NULL */
	char *tmp;		/* owned: the temporary directory */
	char *data_dir, *conn_file, *log_path;	/* owned, inside tmp */
	pid_t pid;		/* > 0 while running */
	bool killed;		/* we sent SIGKILL: its death is expected */
	int ctl_fd;		/* admin connection, -1 when not open */
};

/* Owned: makes the temporary directory; the broker starts with _start. */
struct scn_broker *scn_broker_new_owned(struct scn_run *r, const char *exe, char **args,
                                        const char *config, char *err, size_t errlen);
struct scn_broker *scn_broker_new_attached(struct scn_run *r, const char *host, uint16_t port,
                                           const char *control_socket);
/* Stops an owned broker that still runs (SIGTERM), removes its directory
 * unless MQ_SCENARIO_KEEP is set. NULL is fine. */
void scn_broker_free(struct scn_broker *b);
/* Starts an owned broker and waits for its connection file. */
int scn_broker_start(struct scn_broker *b, char *err, size_t errlen);
/* SIGTERM and wait. -1 with the reason when it did not exit with 0 (a
 * sanitizer report, a crash, a timeout: then SIGKILL). */
int scn_broker_stop(struct scn_broker *b, char *err, size_t errlen);
/* SIGKILL and wait: kill -9. */
void scn_broker_kill(struct scn_broker *b);
/* Called from the loop's tick: -1 with the reason when an owned broker
 * died on its own. */
int scn_broker_check(struct scn_broker *b, char *err, size_t errlen);
/* The last lines of an owned broker's log, for failure messages. */
void scn_broker_log_tail(const struct scn_broker *b, struct sbuf *out, int lines);
/* One admin command on the control socket: the parsed reply
 * ({status, ok, message, data}), or NULL with the reason. */
struct json *scn_broker_admin(struct scn_broker *b, const char *line, char *err, size_t errlen);
const char *scn_broker_name(const struct scn_broker *b, char *buf, size_t len);

/* ---- producers and consumers (scenario_load.c) --------------------------- */

struct scn_pgroup;
struct scn_cgroup;

/* What producers{} asks for, checked by the Lua layer. Strings borrowed. */
struct scn_pgroup_opts {
	struct scn_broker *broker;
	const char *dest;
	unsigned n;
	uint64_t count;		/* messages in all, across the n connections; 0 with duration */
	double duration_s;	/* 0 with count */
	double rate;		/* messages per second in all; 0 = as fast as possible */
	size_t size;		/* body bytes */
	const struct mq_header *headers;
	size_t nheaders;
	bool persistent;
	unsigned receipts;	/* posts with a receipt in flight per connection; 0 = none */
	bool reconnect;
	unsigned reconnect_ms;
	const char *login, *passcode, *vhost;
};

struct scn_cgroup_opts {
	struct scn_broker *broker;
	const char *dest;
	unsigned n;
	enum mq_ack_mode ack;
	uint32_t max_unconfirmed;
	uint64_t max_unconfirmed_bytes;
	int32_t priority;
	const char *selector;	/* JMS selector; NULL: every message */
	unsigned delay_ms;	/* processing time per message */
	uint64_t disconnect_after;	/* 0 = never */
	bool fanout;
	const struct mq_header *headers;
	size_t nheaders;
	bool reconnect;
	unsigned reconnect_ms;
	const char *login, *passcode, *vhost;
};

/* Counters of a group, as Lua and the report see them. */
struct scn_pstats {
	uint64_t sent;		/* posts the library took */
	uint64_t acked;		/* RECEIPTs */
	uint64_t failed;	/* posts failed by an ERROR or a close */
	unsigned connected;	/* connections up now */
	unsigned finished;	/* connections that posted everything and saw their receipts */
	unsigned closed;	/* connections closed for good */
	uint64_t reconnects;	/* connections made again after a loss */
	uint64_t drops;		/* connections aborted by drop() */
};

struct scn_cstats {
	uint64_t delivered;	/* MESSAGE frames that arrived */
	uint64_t received;	/* messages processed: confirmed, or taken in ack mode auto */
	uint64_t redelivered;	/* deliveries marked redelivered */
	uint64_t abandoned;	/* deliveries left unconfirmed when a connection went away */
	uint64_t foreign;	/* messages without this run's stamp */
	uint64_t out_of_order;	/* first deliveries older than one already seen from that producer */
	uint64_t unconfirmed;	/* held now, waiting for their processing time */
	uint64_t peak_unconfirmed;	/* most held at once by one connection */
	uint64_t confirm_failed;	/* mq_confirm refusals */
	unsigned connected;
	unsigned ready;		/* subscriptions the broker confirmed, now */
	unsigned closed;
	uint64_t reconnects;
	uint64_t drops;
	uint64_t errors;	/* ERROR frames and refused subscriptions */
};

struct scn_pgroup *scn_pgroup_new(struct scn_run *r, const struct scn_pgroup_opts *o);
void scn_pgroup_start(struct scn_pgroup *g);
void scn_pgroup_stop(struct scn_pgroup *g);
void scn_pgroup_free(struct scn_pgroup *g);	/* aborts what is open */
void scn_pgroup_stats(const struct scn_pgroup *g, struct scn_pstats *out);
bool scn_pgroup_done(const struct scn_pgroup *g);	/* every connection finished */
unsigned scn_pgroup_index(const struct scn_pgroup *g);
unsigned scn_pgroup_n(const struct scn_pgroup *g);
const char *scn_pgroup_dest(const struct scn_pgroup *g);
const struct scn_source *scn_pgroup_source(const struct scn_pgroup *g, unsigned i);
const char *scn_pgroup_error(const struct scn_pgroup *g);	/* the last error seen; "" */
/* Aborts up to n connected connections; returns how many. */
unsigned scn_pgroup_drop(struct scn_pgroup *g, unsigned n);
/* Broker client ids (the CONNECTED session header) of connection i; "" when down. */
const char *scn_pgroup_client_id(const struct scn_pgroup *g, unsigned i);

struct scn_cgroup *scn_cgroup_new(struct scn_run *r, const struct scn_cgroup_opts *o);
void scn_cgroup_start(struct scn_cgroup *g);
void scn_cgroup_stop(struct scn_cgroup *g);
void scn_cgroup_free(struct scn_cgroup *g);
void scn_cgroup_stats(const struct scn_cgroup *g, struct scn_cstats *out);
unsigned scn_cgroup_index(const struct scn_cgroup *g);
unsigned scn_cgroup_n(const struct scn_cgroup *g);
const char *scn_cgroup_dest(const struct scn_cgroup *g);
struct scn_sink *scn_cgroup_sink(const struct scn_cgroup *g);
const struct scn_hist *scn_cgroup_latency(const struct scn_cgroup *g);
const char *scn_cgroup_error(const struct scn_cgroup *g);
unsigned scn_cgroup_drop(struct scn_cgroup *g, unsigned n);
void scn_cgroup_stall(struct scn_cgroup *g, double seconds);
const char *scn_cgroup_client_id(const struct scn_cgroup *g, unsigned i);
uint64_t scn_cgroup_received_by(const struct scn_cgroup *g, unsigned i);	/* connection i */
/* Every session of both kinds idle (after stop). */
bool scn_pgroup_idle(const struct scn_pgroup *g);
bool scn_cgroup_idle(const struct scn_cgroup *g);

/* ---- the run (scenario.c) ------------------------------------------------ */

struct scn_run {
	struct event_base *base;	/* owned */
	const struct scenario_opts *opts;	/* borrowed */
	const char *path;		/* borrowed: the scenario file */
	uint32_t id;			/* stamped on every message of this run */
	uint64_t t0_ns;			/* when the run began */

	struct scn_broker **brokers;	/* owned, in creation order */
	size_t nbrokers;
	struct scn_pgroup **pgroups;	/* owned */
	size_t npgroups;
	struct scn_cgroup **cgroups;	/* owned */
	size_t ncgroups;
	struct scn_sink **sinks;	/* owned */
	size_t nsinks;
	struct scn_link **links;	/* owned (scenario_link.c) */
	size_t nlinks;
	struct scn_source **sources;	/* borrowed from the producers; by id - 1 */
	size_t nsources;

	struct scn_hist *latency;	/* owned: every first delivery of the run, ns */
	uint64_t first_post_ns;		/* the active window: first post ... */
	uint64_t last_recv_ns;		/* ... last message processed */
	uint64_t last_post_ns;

	struct event *wake;		/* ends one slice of the loop */
	struct event *tick;		/* interrupt, broker deaths, progress */
	uint64_t progress_ns;		/* last progress line */
	uint64_t progress_sent, progress_recv;
	bool progress_shown;		/* a progress line is on the terminal */

	bool aborted;			/* interrupted, or a broker died: stop at once */
	bool interrupted;
	char fatal[2048];		/* why it was aborted */
	char failure[2048];		/* the first failed check: "file:line: message" */
	bool failed;
	char error[4096];		/* what is wrong with the script (exit status 2) */
};

/* ---- links (scenario_link.c): a relay the scenario can cut ---- */
struct scn_link;
struct scn_link_info {
	unsigned index;			/* 1, 2, ... */
	uint16_t port;			/* where to connect: 127.0.0.1:port */
	const char *target_host;	/* borrowed */
	uint16_t target_port;
	bool cut;
	unsigned connections;		/* relayed now */
	uint64_t accepted;		/* connections taken since it was made */
	uint64_t bytes;			/* relayed */
	uint64_t dropped_bytes;		/* thrown away while cut */
};
/* Listens on a free loopback port and relays each connection to
 * host:port (an IPv4 address). Owned by the run. */
struct scn_link *scn_link_new(struct scn_run *run, const char *host, uint16_t port, char *err, size_t errlen);
/* Cut: bytes are dropped both ways, connections stay open (only
 * heart-beats notice). Restore: they flow again. */
void scn_link_cut(struct scn_link *l);
void scn_link_restore(struct scn_link *l);
/* Closes every relayed connection with a reset; returns how many. */
unsigned scn_link_drop(struct scn_link *l);
void scn_link_get(const struct scn_link *l, struct scn_link_info *info);
void scn_link_free(struct scn_link *l);

/* Runs the loop until deadline_ns (CLOCK_MONOTONIC) or an abort: 0, or -1
 * when the run was aborted (r->fatal says why). */
int scn_loop_until(struct scn_run *r, uint64_t deadline_ns);
/* Records a failed check (the first one is kept). */
void scn_fail(struct scn_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Registers a producer connection: its id. */
uint32_t scn_register_source(struct scn_run *r, struct scn_source *src);
const struct scn_source *scn_source_get(const struct scn_run *r, uint32_t id);
/* The sink for a new consumers group: shared with earlier non-fanout
 * groups on the same broker and queue. */
struct scn_sink *scn_sink_for(struct scn_run *r, const void *broker, const char *dest, bool fanout,
                              unsigned copies, unsigned group_index);
/* Clears a progress line before other output. */
void scn_progress_clear(struct scn_run *r);

/* ---- the report (scenario_report.c) ------------------------------------- */

struct scn_report {
	uint64_t sent, received, delivered, lost, duplicated, redelivered;
	uint64_t acked, failed, abandoned, out_of_order;
	double msgs_per_s;	/* received over the active window */
	double sent_per_s;	/* sent from the first post to the last */
	double duration_s;	/* the active window: first post to last message processed */
	double elapsed_s;	/* the whole run */
	uint64_t latency_count;
	double latency_p50_ms, latency_p99_ms, latency_p999_ms, latency_max_ms, latency_mean_ms;
};

/* lost and duplicated over every sink, each compared with the sources
 * that feed it. */
void scn_report_tally(struct scn_source *const *sources, size_t nsources, struct scn_sink *const *sinks,
                      size_t nsinks, struct scn_report *rep);
void scn_report_latency(const struct scn_hist *h, struct scn_report *rep);
void scn_report_compute(const struct scn_run *r, struct scn_report *rep);
/* "sent=... received=... lost=... msgs_per_s=... latency_p50_ms=...": the
 * same names as the JSON. */
void scn_report_line(const struct scn_report *rep, struct sbuf *out);
/* One JSON object on one line: the same fields, the status, the failure
 * text, and one object per producers and consumers group. */
void scn_report_json(const struct scn_run *r, const struct scn_report *rep, const char *status,
                     struct sbuf *out);

/* ---- Lua (scenario_lua.c) ------------------------------------------------ */

/* Runs the script: 0 when it ran to the end, 1 when a check failed or the
 * run was aborted (r->failure / r->fatal), 2 when the script is wrong or
 * a broker could not be started (the message printed). */
int scn_lua_run(struct scn_run *r);

#endif
