/* MPI ping-pong between ranks 0 and 1: median one-way latency of 8-byte
 * messages and the bandwidth of 4 MiB messages. Rank 0 prints one line:
 * latency_us=... bandwidth_mbs=... */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SMALL       8
#define LARGE       (4 << 20)
#define SMALL_ITERS 200
#define LARGE_ITERS 10
#define ROUNDS      5

static double round_trip(char *buf, int len, int iters, int rank)
{
	double start = MPI_Wtime();

	for (int i = 0; i < iters; i++) {
		if (rank == 0) {
			MPI_Send(buf, len, MPI_CHAR, 1, 0, MPI_COMM_WORLD);
			MPI_Recv(buf, len, MPI_CHAR, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		} else {
			MPI_Recv(buf, len, MPI_CHAR, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			MPI_Send(buf, len, MPI_CHAR, 0, 0, MPI_COMM_WORLD);
		}
	}
	return (MPI_Wtime() - start) / iters;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	double lat[ROUNDS], bw[ROUNDS];
	int rank;
	char *buf = malloc(LARGE);

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	if (buf == NULL)
		MPI_Abort(MPI_COMM_WORLD, 1);
	memset(buf, 1, LARGE);
	round_trip(buf, SMALL, 20, rank); /* warm-up: connections */
	for (int r = 0; r < ROUNDS; r++) {
		lat[r] = round_trip(buf, SMALL, SMALL_ITERS, rank) / 2 * 1e6;
		bw[r] = 2.0 * LARGE / round_trip(buf, LARGE, LARGE_ITERS, rank) / 1e6;
	}
	qsort(lat, ROUNDS, sizeof(double), cmp);
	qsort(bw, ROUNDS, sizeof(double), cmp);
	if (rank == 0)
		printf("latency_us=%.1f bandwidth_mbs=%.1f\n", lat[ROUNDS / 2], bw[ROUNDS / 2]);
	free(buf);
	MPI_Finalize();
	return 0;
}
