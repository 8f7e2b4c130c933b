#include <stdio.h>

#include "spank_vm/checkpoint_name.h"

void svm_ckpt_dir_name(uint32_t job_id, bool partial, char *buf, size_t size)
{
	snprintf(buf, size, partial ? ".spank_vm-job%u.partial" : "spank_vm-job%u", job_id);
}
