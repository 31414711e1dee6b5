/* index: writing a channel's page index as the save streams (the format and the loader are
 * public: cp_index.h). */
#ifndef SAVEFS_COPIER_INDEX_H
#define SAVEFS_COPIER_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "cp_index.h"
#include "stream.h"

/* ---- writing: each call appends one encoded part to stage ST ---- */
/* VERSION CP_INDEX_VERSION (what saves write: sums of CP_INDEX_SUM_SHIFT, runs), or 1 and 2
 * (tests of old indexes). */
int cp_index_put_header(struct cp_stage *st, uint32_t version, char *err, size_t errlen);
int cp_index_put_block(struct cp_stage *st, uint32_t block_id, const char *name, uint32_t name_len,
                       char *err, size_t errlen);
/* TYPE is CP_INDEX_PAGES or CP_INDEX_ZEROS: the NPAGES pages of one packet, or of a part of it
 * contiguous in the stream. An index of VERSION 3 gets them as runs where that is shorter. */
/* How many records cp_index_put_pages writes for these pages: 1 (a list, or one run) or the
 * number of runs. */
uint32_t cp_index_records(uint32_t version, uint32_t npages, const uint64_t *ram_offsets);
int cp_index_put_pages(struct cp_stage *st, uint32_t version, uint32_t type, uint32_t block_id,
                       uint32_t npages, uint64_t stream_offset, const uint64_t *ram_offsets,
                       char *err, size_t errlen);
int cp_index_put_sum(struct cp_stage *st, uint64_t k, uint64_t xxh3, char *err, size_t errlen);
int cp_index_put_end(struct cp_stage *st, uint64_t npages, uint64_t stream_size, char *err,
                     size_t errlen);

#endif
