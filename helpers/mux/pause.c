/* Letting the guest be saved under running sessions (doc/protocol.md, 7.1).
 *
 * SIGUSR1: the mux quiesces the channel (PAUSE after everything queued, then
 * waits for PAUSED), hangs up and holds its clients: their sessions stay
 * open, nothing of theirs is read, and frames for the agent made meanwhile
 * wait in agent_out. While detached, LISTEN.paused exists: whoever saves
 * the guest (spank-vm-ctl checkpoint) waits on it. SIGUSR2: the mux
 * reconnects to the guest channel (the same guest, or the one restored from
 * the save), sends HELLO and RESUME, and on READY from the same boot the
 * sessions go on. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "spank_vm/runtime.h"
#include "mux.h"

static void marker_path(const struct mux *m, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s", m->opts->listen_path, SVM_MUX_PAUSED_SUFFIX);
}

static void move_queue(struct svm_byte_queue *to, struct svm_byte_queue *from)
{
	size_t len;
	const uint8_t *front = svm_byte_queue_front(from, &len);
	struct svm_err err;

	if (len > 0 && svm_byte_queue_append(to, front, len, &err) != 0)
		mux_log("cannot move queued frames: %s", err.msg);
	svm_byte_queue_consume(from, len);
}

static bool boot_id_of(const uint8_t *payload, size_t len, char *out, size_t out_len)
{
	struct svm_proto_frame f = {
	        .type = SVM_PROTO_MSG_READY, .len = (uint32_t)len, .payload = payload};
	struct svm_proto_ready ready;
	struct svm_err err;

	if (svm_proto_decode_ready(&f, &ready, &err) != 0)
		return false;
	snprintf(out, out_len, "%.*s", (int)ready.boot_id.len, (const char *)ready.boot_id.data);
	return true;
}

void mux_pause(struct mux *m)
{
	if (m->opts->agent_device != NULL) {
		mux_log("SIGUSR1: this mux does not pause its channel");
		return;
	}
	if (!m->agent_ready || m->channel != MUX_CHANNEL_LIVE) {
		mux_log("SIGUSR1: the channel is not live: ignored");
		return;
	}
	if (m->agent_version < SVM_PROTO_VERSION_PAUSE) {
		mux_log("SIGUSR1: cannot pause: the agent speaks protocol version %u",
		        (unsigned)m->agent_version);
		return;
	}
	move_queue(&m->agent_first, &m->agent_out);
	mux_put_frame(&m->agent_first, SVM_PROTO_MSG_PAUSE, 0, NULL, 0, NULL);
	m->channel = MUX_CHANNEL_PAUSING;
	m->heartbeat_sent = 0;
	m->agent_heard = mux_now(); /* PAUSED is due within the heartbeat timeout */
	mux_log("pausing the guest channel");
}

void mux_paused(struct mux *m, const struct svm_proto_frame *f)
{
	char marker[4096];
	struct svm_err err;
	int fd;

	if (m->channel != MUX_CHANNEL_PAUSING || svm_proto_decode_empty(f, &err) != 0) {
		mux_put_error(&m->agent_out, 0, SVM_PROTO_E_STATE, "PAUSED unasked");
		mux_agent_lost(m, "the agent sent PAUSED unasked");
		return;
	}
	close(m->agent_fd);
	m->agent_fd = -1;
	svm_proto_reader_init(m->agent_reader, SVM_PROTO_AGENT);
	svm_byte_queue_consume(&m->agent_first, svm_byte_queue_len(&m->agent_first));
	m->channel = MUX_CHANNEL_DETACHED;
	m->agent_heard = mux_now(); /* when we hung up: MUX_DETACHED_MAX_S from here */
	marker_path(m, marker, sizeof(marker));
	unlink(marker);
	fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		mux_log("cannot create %s: %s", marker, strerror(errno));
	else
		close(fd);
	mux_log("paused and detached: the guest may be saved");
}

void mux_resume(struct mux *m)
{
	struct svm_byte_queue held = m->agent_out;
	struct svm_err err;

	if (m->channel != MUX_CHANNEL_DETACHED) {
		mux_log("SIGUSR2: the channel is not detached: ignored");
		return;
	}
	svm_byte_queue_init(&m->agent_out);
	if (mux_agent_connect(m, &err) != 0) {
		svm_byte_queue_free(&m->agent_out);
		m->agent_out = held;
		mux_agent_lost(m, "cannot reattach: %s", err.msg);
		return;
	}
	move_queue(&m->agent_first, &m->agent_out); /* HELLO */
	svm_byte_queue_free(&m->agent_out);
	m->agent_out = held;
	mux_put_frame(&m->agent_first, SVM_PROTO_MSG_RESUME, 0, NULL, 0, NULL);
	m->channel = MUX_CHANNEL_RESUMING;
	m->agent_heard = mux_now(); /* READY is due within the heartbeat timeout */
	mux_log("reattached: RESUME sent");
}

void mux_resumed(struct mux *m, const struct svm_proto_frame *f)
{
	char before[SVM_PROTO_MAX_READY_TEXT + 1], now[SVM_PROTO_MAX_READY_TEXT + 1];
	char marker[4096];

	if (!boot_id_of(m->ready_payload, m->ready_len, before, sizeof(before)) ||
	    !boot_id_of(f->payload, f->len, now, sizeof(now)) || strcmp(before, now) != 0) {
		mux_put_error(&m->agent_out, 0, SVM_PROTO_E_STATE, "another guest");
		mux_agent_lost(m, "the guest that came back is not the one paused (boot id %s)",
		               now);
		return;
	}
	m->channel = MUX_CHANNEL_LIVE;
	m->heartbeat_sent = 0;
	m->heartbeat_due = mux_now() + m->opts->heartbeat_interval;
	marker_path(m, marker, sizeof(marker));
	unlink(marker);
	mux_log("resumed: the same guest (boot id %s)", now);
}

void mux_pause_cleanup(struct mux *m)
{
	char marker[4096];

	if (m->opts->listen_path == NULL)
		return;
	marker_path(m, marker, sizeof(marker));
	unlink(marker);
}
