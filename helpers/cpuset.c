#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spank_vm/cpuset.h"

#define WORD_BITS 64u
#define NWORDS    (SVM_CPUSET_MAX / WORD_BITS)

/* Untrusted lists are quoted in messages; cap what we echo back. */
#define QUOTE_MAX 64

void svm_cpuset_clear(struct svm_cpuset *set)
{
	memset(set, 0, sizeof(*set));
}

int svm_cpuset_add(struct svm_cpuset *set, unsigned id)
{
	if (id >= SVM_CPUSET_MAX)
		return -1;
	set->words[id / WORD_BITS] |= UINT64_C(1) << (id % WORD_BITS);
	return 0;
}

bool svm_cpuset_has(const struct svm_cpuset *set, unsigned id)
{
	if (id >= SVM_CPUSET_MAX)
		return false;
	return (set->words[id / WORD_BITS] >> (id % WORD_BITS)) & 1u;
}

unsigned svm_cpuset_count(const struct svm_cpuset *set)
{
	unsigned count = 0;

	for (size_t i = 0; i < NWORDS; i++)
		count += (unsigned)__builtin_popcountll(set->words[i]);
	return count;
}

bool svm_cpuset_is_empty(const struct svm_cpuset *set)
{
	for (size_t i = 0; i < NWORDS; i++)
		if (set->words[i] != 0)
			return false;
	return true;
}

bool svm_cpuset_equal(const struct svm_cpuset *a, const struct svm_cpuset *b)
{
	return memcmp(a->words, b->words, sizeof(a->words)) == 0;
}

bool svm_cpuset_is_subset(const struct svm_cpuset *sub, const struct svm_cpuset *super)
{
	for (size_t i = 0; i < NWORDS; i++)
		if (sub->words[i] & ~super->words[i])
			return false;
	return true;
}

void svm_cpuset_or(struct svm_cpuset *dst, const struct svm_cpuset *src)
{
	for (size_t i = 0; i < NWORDS; i++)
		dst->words[i] |= src->words[i];
}

void svm_cpuset_and(struct svm_cpuset *dst, const struct svm_cpuset *src)
{
	for (size_t i = 0; i < NWORDS; i++)
		dst->words[i] &= src->words[i];
}

void svm_cpuset_andnot(struct svm_cpuset *dst, const struct svm_cpuset *src)
{
	for (size_t i = 0; i < NWORDS; i++)
		dst->words[i] &= ~src->words[i];
}

int svm_cpuset_next(const struct svm_cpuset *set, unsigned from)
{
	size_t i = from / WORD_BITS;
	uint64_t word;

	if (from >= SVM_CPUSET_MAX)
		return -1;
	/* Mask off the ids below `from` in the first word, then scan whole words. */
	word = set->words[i] & (~UINT64_C(0) << (from % WORD_BITS));
	while (word == 0) {
		if (++i == NWORDS)
			return -1;
		word = set->words[i];
	}
	return (int)(i * WORD_BITS + (unsigned)__builtin_ctzll(word));
}

int svm_cpuset_last(const struct svm_cpuset *set)
{
	for (size_t i = NWORDS; i-- > 0;)
		if (set->words[i] != 0)
			return (int)(i * WORD_BITS + WORD_BITS - 1 -
			             (unsigned)__builtin_clzll(set->words[i]));
	return -1;
}

/* ---- parsing ---- */

struct list_parser {
	const char *text;
	const char *pos;
	unsigned max_id;
	struct svm_err *err;
};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* The list is untrusted and ends up in logs: show it cut short and with
 * anything unprintable (or a quote) replaced. */
static const char *quotable(const char *text, char *buf, size_t size)
{
	size_t i = 0;

	for (; text[i] != '\0' && i + 4 < size; i++)
		buf[i] = (text[i] >= 0x20 && text[i] < 0x7f && text[i] != '"') ? text[i] : '?';
	if (text[i] != '\0') {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

static int list_error(const struct list_parser *lp, const char *problem)
{
	char shown[QUOTE_MAX];

	return svm_err_set(lp->err,
	                   "invalid CPU list \"%s\": %s at offset %zu; expected ids and ranges "
	                   "such as 0-3,8 with ids 0-%u",
	                   quotable(lp->text, shown, sizeof(shown)), problem,
	                   (size_t)(lp->pos - lp->text), lp->max_id);
}

static int parse_id(struct list_parser *lp, unsigned *id)
{
	const char *digits = lp->pos;
	size_t ndigits = 0;
	uint64_t value = 0;

	while (is_digit(digits[ndigits]))
		ndigits++;
	if (ndigits == 0)
		return list_error(lp, "expected a number");
	if (ndigits > 1 && digits[0] == '0')
		return list_error(lp, "number with a leading zero");
	/* Ten digits cannot overflow 64 bits; anything longer is out of range anyway. */
	for (size_t i = 0; i < ndigits && i < 11; i++)
		value = value * 10 + (uint64_t)(digits[i] - '0');
	if (ndigits > 10 || value > lp->max_id)
		return list_error(lp, "id out of range");
	lp->pos += ndigits;
	*id = (unsigned)value;
	return 0;
}

static int parse_range(struct list_parser *lp, struct svm_cpuset *out)
{
	unsigned first, last;

	if (parse_id(lp, &first) < 0)
		return -1;
	last = first;
	if (*lp->pos == '-') {
		lp->pos++;
		if (parse_id(lp, &last) < 0)
			return -1;
		if (last < first)
			return list_error(lp, "range ends below its start");
	}
	for (unsigned id = first; id <= last; id++)
		svm_cpuset_add(out, id);
	return 0;
}

int svm_cpuset_parse(const char *text, unsigned max_id, struct svm_cpuset *out, struct svm_err *err)
{
	struct list_parser lp = {.text = text, .pos = text, .max_id = max_id, .err = err};

	if (text == NULL || *text == '\0')
		return svm_err_set(err, "empty CPU list; expected ids and ranges such as 0-3,8");
	if (max_id >= SVM_CPUSET_MAX)
		lp.max_id = SVM_CPUSET_MAX - 1;
	svm_cpuset_clear(out);
	for (;;) {
		if (parse_range(&lp, out) < 0)
			return -1;
		if (*lp.pos == '\0')
			return 0;
		if (*lp.pos != ',')
			return list_error(&lp, "unexpected character");
		lp.pos++;
	}
}

/* ---- formatting ---- */

struct sink {
	char *buf;
	size_t size;
	size_t len; /* what the full output needs so far */
};

static void sink_put(struct sink *s, const char *prefix, unsigned id)
{
	char *dst = s->len < s->size ? s->buf + s->len : NULL;
	size_t room = s->len < s->size ? s->size - s->len : 0;
	int n = snprintf(dst, room, "%s%u", prefix, id);

	if (n > 0)
		s->len += (size_t)n;
}

size_t svm_cpuset_format(const struct svm_cpuset *set, char *buf, size_t size)
{
	struct sink s = {.buf = buf, .size = size, .len = 0};
	int id = svm_cpuset_next(set, 0);

	if (size > 0)
		buf[0] = '\0';
	while (id >= 0) {
		unsigned run_end = (unsigned)id;

		while (svm_cpuset_has(set, run_end + 1))
			run_end++;
		sink_put(&s, s.len == 0 ? "" : ",", (unsigned)id);
		if (run_end > (unsigned)id)
			sink_put(&s, "-", run_end);
		id = svm_cpuset_next(set, run_end + 1);
	}
	return s.len;
}

char *svm_cpuset_to_str(const struct svm_cpuset *set, struct svm_err *err)
{
	size_t len = svm_cpuset_format(set, NULL, 0);
	char *str = malloc(len + 1);

	if (str == NULL) {
		svm_err_set(err, "out of memory formatting a CPU list of %zu bytes", len);
		return NULL;
	}
	svm_cpuset_format(set, str, len + 1);
	return str;
}
