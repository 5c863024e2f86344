/* The metrics log read back (train/metrics_log.c): any CSV with a header line. */
#include "fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tg_metrics_table t;
    if (tg_metrics_read_csv(fuzz_file(data, size, ".csv"), &t) == TG_OK) {
        (void)tg_metrics_column(&t, "valid_acc");
        tg_metrics_table_free(&t);
    }
    return 0;
}
