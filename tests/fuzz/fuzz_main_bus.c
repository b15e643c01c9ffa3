/* libFuzzer entry of the "bus" target (see fuzz_targets.h). */
#include "fuzz_targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    return fuzz_bus_run(data, len);
}
