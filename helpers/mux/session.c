/* The session table. Guest ids are handed out in increasing order and kept
 * sorted, so the agent's frames (the bulk of the traffic) find their
 * session by binary search; a client's frames scan its own few. */
#include <stdlib.h>
#include <string.h>

#include "mux.h"

static size_t lower_bound(const struct mux *m, uint32_t guest_id)
{
	size_t lo = 0, hi = m->nsessions;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->sessions[mid]->guest_id < guest_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int make_room(struct mux *m)
{
	size_t cap = m->session_cap > 0 ? m->session_cap * 2 : 16;
	struct mux_session **grown;

	if (m->nsessions < m->session_cap)
		return 0;
	grown = realloc(m->sessions, cap * sizeof(*grown));
	if (grown == NULL)
		return -1;
	m->sessions = grown;
	m->session_cap = cap;
	return 0;
}

struct mux_session *mux_session_new(struct mux *m, struct mux_client *c, uint32_t client_id,
                                    uint32_t flags)
{
	struct mux_session *s;

	if (m->last_guest_id == UINT32_MAX || make_room(m) != 0)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->guest_id = ++m->last_guest_id;
	s->client_id = client_id;
	s->client = c;
	s->flags = flags;
	for (int i = 0; i < SVM_PROTO_STREAMS; i++) {
		svm_proto_send_credit_init(&s->agent_credit[i]);
		svm_proto_send_credit_init(&s->client_credit[i]);
	}
	m->sessions[m->nsessions++] = s;
	c->sessions++;
	return s;
}

struct mux_session *mux_session_by_guest(struct mux *m, uint32_t guest_id)
{
	size_t at = lower_bound(m, guest_id);

	if (at < m->nsessions && m->sessions[at]->guest_id == guest_id)
		return m->sessions[at];
	return NULL;
}

struct mux_session *mux_session_by_client(struct mux *m, const struct mux_client *c,
                                          uint32_t client_id)
{
	for (size_t i = 0; i < m->nsessions; i++)
		if (m->sessions[i]->client == c && m->sessions[i]->client_id == client_id)
			return m->sessions[i];
	return NULL;
}

void mux_session_settle(struct mux *m, struct mux_session *s)
{
	size_t at;

	if (!s->close_to_agent || !s->close_from_agent || !s->close_to_client ||
	    !s->close_from_client)
		return;
	at = lower_bound(m, s->guest_id);
	memmove(&m->sessions[at], &m->sessions[at + 1],
	        (m->nsessions - at - 1) * sizeof(m->sessions[0]));
	m->nsessions--;
	if (s->client != NULL)
		s->client->sessions--;
	free(s);
}

void mux_session_fail(struct mux *m, struct mux_session *s, uint32_t code, const char *text,
                      bool agent_at_fault)
{
	if (!s->close_to_agent) {
		if (agent_at_fault)
			mux_put_error(&m->agent_out, s->guest_id, code, "%s", text);
		mux_put_close(&m->agent_out, s->guest_id);
		s->close_to_agent = true;
	}
	if (s->client != NULL && !s->close_to_client) {
		mux_put_error(&s->client->out, s->client_id, code, "%s%s",
		              agent_at_fault ? "the guest agent broke the protocol: " : "", text);
		mux_put_close(&s->client->out, s->client_id);
		s->close_to_client = true;
	}
	mux_session_settle(m, s);
}

bool mux_session_stream_open(const struct mux_session *s, uint8_t stream)
{
	if (stream == SVM_PROTO_STDIN)
		return (s->flags & SVM_PROTO_EXEC_HAS_STDIN) != 0;
	if (stream == SVM_PROTO_EXTRA)
		return (s->flags & SVM_PROTO_EXEC_HAS_EXTRA) != 0;
	return true;
}
