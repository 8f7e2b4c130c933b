#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "spank_vm/byte_queue.h"

static void test_byte_queue_starts_empty(void **state)
{
	struct svm_byte_queue q;
	size_t len = 1;

	(void)state;
	svm_byte_queue_init(&q);
	assert_int_equal(svm_byte_queue_len(&q), 0);
	assert_null(svm_byte_queue_front(&q, &len));
	assert_int_equal(len, 0);
	svm_byte_queue_consume(&q, 10); /* consuming nothing is harmless */
	svm_byte_queue_free(&q);
}

static void test_byte_queue_keeps_order_across_partial_consumes(void **state)
{
	struct svm_byte_queue q;
	struct svm_err err;
	uint8_t in[10000], out[10000];
	size_t have = 0, len;
	const uint8_t *front;

	(void)state;
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 7 + 3);
	svm_byte_queue_init(&q);
	assert_int_equal(svm_byte_queue_append(&q, in, 6000, &err), 0);
	front = svm_byte_queue_front(&q, &len);
	memcpy(out, front, 1000);
	svm_byte_queue_consume(&q, 1000);
	have = 1000;
	assert_int_equal(svm_byte_queue_append(&q, in + 6000, 4000, &err), 0);
	while ((front = svm_byte_queue_front(&q, &len)) != NULL) {
		size_t take = len > 777 ? 777 : len;

		memcpy(out + have, front, take);
		have += take;
		svm_byte_queue_consume(&q, take);
	}
	assert_int_equal(have, sizeof(in));
	assert_memory_equal(in, out, sizeof(in));
	svm_byte_queue_free(&q);
}

/* Frames are encoded straight into the queue's tail. */
static void test_byte_queue_reserve_takes_an_encoded_frame(void **state)
{
	struct svm_byte_queue q;
	struct svm_proto_buf buf;
	struct svm_err err;
	size_t len;

	(void)state;
	svm_byte_queue_init(&q);
	assert_int_equal(svm_byte_queue_reserve(&q, 64, &buf, &err), 0);
	assert_true(buf.cap >= 64);
	assert_int_equal(svm_proto_encode_close(&buf, 7, &err), 0);
	svm_byte_queue_commit(&q, &buf);
	assert_int_equal(svm_byte_queue_len(&q), SVM_PROTO_HEADER_SIZE);
	assert_int_equal(svm_byte_queue_front(&q, &len)[4], SVM_PROTO_MSG_CLOSE);
	svm_byte_queue_free(&q);
}

/* A queue that stays half full does not grow without bound: consumed space
 * at the front is reused. */
static void test_byte_queue_reuses_consumed_space(void **state)
{
	struct svm_byte_queue q;
	struct svm_err err;
	uint8_t chunk[4096] = {0};

	(void)state;
	svm_byte_queue_init(&q);
	for (int i = 0; i < 10000; i++) {
		assert_int_equal(svm_byte_queue_append(&q, chunk, sizeof(chunk), &err), 0);
		if (svm_byte_queue_len(&q) > 8 * sizeof(chunk))
			svm_byte_queue_consume(&q, 4 * sizeof(chunk));
	}
	assert_true(q.cap <= 32 * sizeof(chunk));
	svm_byte_queue_free(&q);
}

static void test_byte_queue_releases_memory_when_drained(void **state)
{
	struct svm_byte_queue q;
	struct svm_err err;
	static uint8_t big[1024 * 1024];

	(void)state;
	svm_byte_queue_init(&q);
	assert_int_equal(svm_byte_queue_append(&q, big, sizeof(big), &err), 0);
	svm_byte_queue_consume(&q, sizeof(big));
	assert_int_equal(q.cap, 0);
	assert_int_equal(svm_byte_queue_append(&q, big, 10, &err), 0);
	assert_int_equal(svm_byte_queue_len(&q), 10);
	svm_byte_queue_free(&q);
}

static void test_byte_queue_refuses_impossible_sizes(void **state)
{
	struct svm_byte_queue q;
	struct svm_proto_buf buf;
	struct svm_err err;

	(void)state;
	svm_byte_queue_init(&q);
	assert_int_equal(svm_byte_queue_append(&q, "x", 1, &err), 0);
	assert_int_equal(svm_byte_queue_reserve(&q, SIZE_MAX, &buf, &err), -1);
	assert_int_equal(svm_byte_queue_len(&q), 1);
	svm_byte_queue_free(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_byte_queue_starts_empty),
	        cmocka_unit_test(test_byte_queue_keeps_order_across_partial_consumes),
	        cmocka_unit_test(test_byte_queue_reserve_takes_an_encoded_frame),
	        cmocka_unit_test(test_byte_queue_reuses_consumed_space),
	        cmocka_unit_test(test_byte_queue_releases_memory_when_drained),
	        cmocka_unit_test(test_byte_queue_refuses_impossible_sizes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
