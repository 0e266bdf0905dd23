#include "program_barrier.hpp"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace nlb {

bool wait_out_programs() {
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0)
        return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return false;
}

} // namespace nlb
