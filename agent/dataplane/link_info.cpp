#include "link_info.hpp"

#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace nlb {

std::string link_driver(const std::string& ifname) {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return {};
    ethtool_drvinfo info{};
    info.cmd = ETHTOOL_GDRVINFO;
    ifreq req{};
    std::strncpy(req.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
    req.ifr_data = reinterpret_cast<char*>(&info);
    bool ok = ::ioctl(fd, SIOCETHTOOL, &req) == 0;
    ::close(fd);
    if (!ok)
        return {};
    return std::string(info.driver, strnlen(info.driver, sizeof(info.driver)));
}

} // namespace nlb
