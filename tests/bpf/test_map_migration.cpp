// Maps pinned by an earlier agent in another layout (map_migration.hpp): converted field by
// field into this build's layout, through the kernel's own maps and BTF, and by the loader on
// adoption, which replaces the pins only once the new program runs.
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "dataplane_loader.hpp"
#include "private_netns.hpp"
#include "map_migration.hpp"

using namespace nlb;
using namespace nlb::test;

namespace test_map_migration {

namespace {

// A BTF of the test's own, loaded into the kernel, to describe maps in made-up layouts.
struct Btf {
    btf* b = btf__new_empty();
    int u8 = btf__add_int(b, "unsigned char", 1, 0);
    int u16 = btf__add_int(b, "unsigned short", 2, 0);
    int u32 = btf__add_int(b, "unsigned int", 4, 0);
    int u64 = btf__add_int(b, "unsigned long long", 8, 0);
    ~Btf() {
        for (int fd : fds)
            close(fd);
        btf__free(b);
    }
    Btf(const Btf&) = delete;
    Btf& operator=(const Btf&) = delete;
    Btf() = default;

    struct Field {
        const char* name;
        int type;
        std::uint32_t byte_offset;
    };
    int add_struct(const char* name, std::uint32_t size, std::initializer_list<Field> fields) {
        int id = btf__add_struct(b, name, size);
        for (const Field& f : fields)
            REQUIRE(btf__add_field(b, f.name, f.type, f.byte_offset * 8, 0) == 0);
        return id;
    }
    int array(int elem, std::uint32_t n) { return btf__add_array(b, u32, elem, n); }
    // A kernel copy of every type added so far (a map names its types in one loaded BTF).
    int fd() {
        __u32 size = 0;
        const void* raw = btf__raw_data(b, &size);
        REQUIRE(raw);
        int fd = bpf_btf_load(raw, size, nullptr);
        REQUIRE(fd >= 0);
        fds.push_back(fd);
        return fd;
    }
    std::vector<int> fds;
};

struct Map {
    int fd = -1;
    explicit Map(int f) : fd(f) { REQUIRE(fd >= 0); }
    ~Map() { close(fd); }
    Map(const Map&) = delete;
    Map& operator=(const Map&) = delete;
};

int create(Btf& t, bpf_map_type type, std::uint32_t key_size, std::uint32_t value_size,
           std::uint32_t entries, int key_id, int value_id, std::uint32_t flags = 0) {
    LIBBPF_OPTS(bpf_map_create_opts, o, .btf_fd = static_cast<__u32>(t.fd()),
                .btf_key_type_id = static_cast<__u32>(key_id),
                .btf_value_type_id = static_cast<__u32>(value_id), .map_flags = flags);
    return bpf_map_create(type, "nlb_test", key_size, value_size, entries, &o);
}

// The IPv4 key as both layouts have it; an earlier value layout without `opened_ns`.
struct OldConn {
    std::uint64_t closed_ns;
    std::uint16_t bucket;
    std::uint8_t rule;
    std::uint8_t pad[5];
};
struct Key {
    std::uint32_t saddr, daddr;
    std::uint16_t sport, dport;
};

int key_type(Btf& t) {
    return t.add_struct(
        "nlb_conn_key4", 12,
        {{"saddr", t.u32, 0}, {"daddr", t.u32, 4}, {"sport", t.u16, 8}, {"dport", t.u16, 10}});
}
int old_conn_type(Btf& t) {
    int pad = t.array(t.u8, 5);
    return t.add_struct(
        "nlb_conn", 16,
        {{"closed_ns", t.u64, 0}, {"bucket", t.u16, 8}, {"rule", t.u8, 10}, {"pad", pad, 11}});
}
int old_conns(Btf& t, std::uint32_t entries) {
    return create(t, BPF_MAP_TYPE_LRU_HASH, sizeof(Key), sizeof(OldConn), entries, key_type(t),
                  old_conn_type(t));
}
int new_conns(Btf& t, std::uint32_t entries) {
    int pad = t.array(t.u8, 5);
    int v = t.add_struct("nlb_conn", sizeof(nlb_conn),
                         {{"opened_ns", t.u64, 0},
                          {"closed_ns", t.u64, 8},
                          {"bucket", t.u16, 16},
                          {"rule", t.u8, 18},
                          {"pad", pad, 19}});
    return create(t, BPF_MAP_TYPE_HASH, sizeof(nlb_conn_key4), sizeof(nlb_conn), entries,
                  key_type(t), v);
}

Key key_of(std::uint32_t i) {
    return {0x0a000000u + i, 0x0a0000ffu, std::uint16_t(1000 + i), 80};
}

void fill_old(int fd, std::uint32_t from, std::uint32_t to) {
    for (std::uint32_t i = from; i < to; ++i) {
        Key k = key_of(i);
        OldConn v{1000 + i, std::uint16_t(i % 1024), std::uint8_t(i % 7), {}};
        REQUIRE(bpf_map_update_elem(fd, &k, &v, BPF_ANY) == 0);
    }
}

} // namespace

TEST_CASE("migration: a connection table in an earlier layout keeps every connection") {
    Btf t;
    Map from(old_conns(t, 1024));
    Map to(new_conns(t, 1024));
    fill_old(from.fd, 0, 100);

    MapMigration m(from.fd, to.fd);
    MigrationCount c = m.copy();
    CHECK(c.copied == 100);
    CHECK(c.refused == 0);
    for (std::uint32_t i = 0; i < 100; ++i) {
        nlb_conn_key4 k{};
        Key old = key_of(i);
        std::memcpy(&k, &old, sizeof(k));
        nlb_conn v{};
        REQUIRE(bpf_map_lookup_elem(to.fd, &k, &v) == 0);
        CHECK(v.closed_ns == 1000 + i); // moved from offset 0 to 8, by name
        CHECK(v.bucket == i % 1024);
        CHECK(v.rule == i % 7);
        CHECK(v.opened_ns == 0); // new in this layout: starts at zero
    }

    SECTION("a second pass copies only what the old map gained, never over the new map") {
        fill_old(from.fd, 100, 105);
        nlb_conn_key4 k{};
        Key first = key_of(0);
        std::memcpy(&k, &first, sizeof(k));
        nlb_conn changed{};
        changed.closed_ns = 42;
        REQUIRE(bpf_map_update_elem(to.fd, &k, &changed, BPF_EXIST) == 0);
        MigrationCount again = m.copy(true);
        CHECK(again.copied == 5);
        CHECK(again.present == 100);
        nlb_conn v{};
        REQUIRE(bpf_map_lookup_elem(to.fd, &k, &v) == 0);
        CHECK(v.closed_ns == 42);
    }
}

TEST_CASE("migration: a smaller new table takes what fits and counts the rest") {
    Btf t;
    Map from(old_conns(t, 1024));
    Map to(new_conns(t, 10));
    fill_old(from.fd, 0, 50);
    MigrationCount c = MapMigration(from.fd, to.fd).copy();
    CHECK(c.copied == 10);
    CHECK(c.refused == 40);
}

TEST_CASE("migration: a key field the old layout lacks refuses the conversion") {
    Btf t;
    Map from(old_conns(t, 64));
    int key = t.add_struct("nlb_conn_key4", 16,
                           {{"saddr", t.u32, 0},
                            {"daddr", t.u32, 4},
                            {"sport", t.u16, 8},
                            {"dport", t.u16, 10},
                            {"vlan", t.u32, 12}});
    Map to(create(t, BPF_MAP_TYPE_HASH, 16, sizeof(OldConn), 64, key, old_conn_type(t)));
    try {
        MapMigration m(from.fd, to.fd);
        FAIL("converted a key with a made-up field");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()) == "key.vlan is new in this layout");
    }
}

TEST_CASE("migration: per-CPU counters and arrays follow their names on every CPU") {
    Btf t;
    int bucket8 = t.array(t.u16, 8);
    int bucket16 = t.array(t.u16, 16);
    int old_v = t.add_struct("stats", 32, {{"a", t.u64, 0}, {"b", t.u64, 8}, {"bk", bucket8, 16}});
    int new_v = t.add_struct(
        "stats", 56, {{"b", t.u64, 0}, {"c", t.u64, 8}, {"a", t.u64, 16}, {"bk", bucket16, 24}});
    Map from(create(t, BPF_MAP_TYPE_PERCPU_ARRAY, 4, 32, 3, t.u32, old_v));
    Map to(create(t, BPF_MAP_TYPE_PERCPU_ARRAY, 4, 56, 3, t.u32, new_v));
    const int cpus = libbpf_num_possible_cpus();
    REQUIRE(cpus > 0);
    struct Old {
        std::uint64_t a, b;
        std::uint16_t bk[8];
    };
    struct New {
        std::uint64_t b, c, a;
        std::uint16_t bk[16];
    };
    static_assert(sizeof(Old) == 32 && sizeof(New) == 56);
    std::vector<Old> in(static_cast<std::size_t>(cpus));
    for (int cpu = 0; cpu < cpus; ++cpu) {
        in[cpu] = {std::uint64_t(10 + cpu), std::uint64_t(20 + cpu), {}};
        for (int k = 0; k < 8; ++k)
            in[cpu].bk[k] = std::uint16_t(100 * cpu + k + 1);
    }
    std::uint32_t slot = 2;
    REQUIRE(bpf_map_update_elem(from.fd, &slot, in.data(), BPF_ANY) == 0);
    MigrationCount c = MapMigration(from.fd, to.fd).copy();
    CHECK(c.copied == 3); // an array has every index
    std::vector<New> out(static_cast<std::size_t>(cpus));
    REQUIRE(bpf_map_lookup_elem(to.fd, &slot, out.data()) == 0);
    for (int cpu = 0; cpu < cpus; ++cpu) {
        CHECK(out[cpu].a == std::uint64_t(10 + cpu));
        CHECK(out[cpu].b == std::uint64_t(20 + cpu));
        CHECK(out[cpu].c == 0);
        for (int k = 0; k < 8; ++k)
            CHECK(out[cpu].bk[k] == std::uint16_t(100 * cpu + k + 1));
        for (int k = 8; k < 16; ++k)
            CHECK(out[cpu].bk[k] == 0);
    }
}

namespace {


std::uint32_t pinned_value_size(const std::string& path) {
    int fd = bpf_obj_get(path.c_str());
    REQUIRE(fd >= 0);
    bpf_map_info info{};
    __u32 len = sizeof(info);
    REQUIRE(bpf_obj_get_info_by_fd(fd, &info, &len) == 0);
    close(fd);
    return info.value_size;
}

void repin(const std::string& path, int fd) {
    unlink(path.c_str());
    REQUIRE(bpf_obj_pin(fd, path.c_str()) == 0);
}

// An earlier release's state: the bucket maps only, a datasec as libbpf makes for .bss.
int old_state(Btf& t, std::uint32_t& size) {
    int buckets = t.array(t.u16, NLB_BUCKETS);
    int rule = t.add_struct("nlb_rule", 2 + 2 * NLB_BUCKETS,
                            {{"mode", t.u8, 0}, {"affinity", t.u8, 1}, {"bucket", buckets, 2}});
    int rules = t.array(rule, NLB_RULE_SLOTS);
    size = NLB_RULE_SLOTS * (2 + 2 * NLB_BUCKETS);
    int state = t.add_struct("nlb_state", size, {{"rules", rules, 0}});
    int var = btf__add_var(t.b, "nlb_state", BTF_VAR_GLOBAL_ALLOCATED, state);
    int sec = btf__add_datasec(t.b, ".bss", size);
    REQUIRE(btf__add_datasec_var_info(t.b, var, 0, size) == 0);
    return create(t, BPF_MAP_TYPE_ARRAY, 4, size, 1, 0, sec, BPF_F_MMAPABLE);
}

} // namespace

TEST_CASE("adoption: pins in an earlier layout are converted, replaced and cleaned up") {
    struct stat st {};
    if (stat("/sys/fs/bpf", &st) != 0) {
        WARN("no bpffs at /sys/fs/bpf: skipped");
        return;
    }
    PrivateNetns ns("migrate");
    auto dp = Dataplane::attach("lo", ns.pin_dir, XdpMode::generic);
    dp.reset(); // the pinned dataplane stays, as after an agent's exit

    // What an earlier release left: its connection table, its state and a map this build
    // dropped. The program still running reads this build's maps; only the pins are old.
    Btf t;
    Map conns(old_conns(t, NLB_CONN_TABLE_ENTRIES));
    fill_old(conns.fd, 0, 20);
    std::uint32_t state_size = 0;
    Map state(old_state(t, state_size));
    std::vector<std::uint8_t> s(state_size);
    auto at = [&](std::uint32_t rule, std::uint32_t b) {
        return reinterpret_cast<std::uint16_t*>(s.data() + rule * (2 + 2 * NLB_BUCKETS) + 2) + b;
    };
    *at(0, 5) = 3;
    *at(1, NLB_BUCKETS - 1) = 7;
    std::uint32_t zero = 0;
    REQUIRE(bpf_map_update_elem(state.fd, &zero, s.data(), BPF_ANY) == 0);
    Map gone(create(t, BPF_MAP_TYPE_ARRAY, 4, 8, 1, t.u32, t.u64));
    repin(ns.pin_dir + "/nlb_conns4", conns.fd);
    repin(ns.pin_dir + "/nlb_state", state.fd);
    repin(ns.pin_dir + "/nlb_gone", gone.fd);

    SECTION("converted: connections and bucket ownership carry over") {
        dp = Dataplane::adopt(ns.pin_dir);
        REQUIRE(dp);
        std::vector<std::string> names;
        for (const MigratedMap& m : dp->migrated()) {
            names.push_back(m.name);
            if (m.name == "nlb_conns4")
                CHECK(m.copied == 20);
        }
        CHECK(names == std::vector<std::string>{"nlb_state", "nlb_conns4"});
        CHECK(dp->maps().state().rules[0].bucket[5] == 3);
        CHECK(dp->maps().state().rules[1].bucket[NLB_BUCKETS - 1] == 7);
        CHECK(dp->maps().state().rules[0].bucket[4] == 0);
        // The pins are this build's maps now, and nothing is left of the old layout.
        CHECK(pinned_value_size(ns.pin_dir + "/nlb_conns4") == sizeof(nlb_conn));
        CHECK(stat((ns.pin_dir + "/nlb_gone").c_str(), &st) != 0);
        CHECK(stat((ns.pin_dir + "/nlb_conns4_migrated").c_str(), &st) != 0);
        int fd = bpf_obj_get((ns.pin_dir + "/nlb_conns4").c_str());
        REQUIRE(fd >= 0);
        nlb_conn_key4 k{};
        Key old = key_of(11);
        std::memcpy(&k, &old, sizeof(k));
        nlb_conn v{};
        CHECK(bpf_map_lookup_elem(fd, &k, &v) == 0);
        CHECK(v.closed_ns == 1011);
        close(fd);
        // A second agent finds nothing more to convert.
        dp.reset();
        dp = Dataplane::adopt(ns.pin_dir);
        REQUIRE(dp);
        CHECK(dp->migrated().empty());
        CHECK(dp->maps().state().rules[0].bucket[5] == 3);
        dp->detach();
    }

    SECTION("a layout it cannot convert is refused, the pins left as they were") {
        int key = t.add_struct("nlb_conn_key6", 8, {{"flow", t.u64, 0}});
        Map odd(create(t, BPF_MAP_TYPE_LRU_HASH, 8, sizeof(OldConn), 64, key, old_conn_type(t)));
        repin(ns.pin_dir + "/nlb_conns6", odd.fd);
        try {
            Dataplane::adopt(ns.pin_dir);
            FAIL("adopted pins it cannot convert");
        } catch (const std::runtime_error& e) {
            CHECK(std::string(e.what()).find("convert the pinned nlb_conns6") != std::string::npos);
        }
        CHECK(pinned_value_size(ns.pin_dir + "/nlb_conns4") == sizeof(OldConn));
        CHECK(stat((ns.pin_dir + "/nlb_gone").c_str(), &st) == 0);
        // Whoever detaches starts afresh.
        std::error_code ec;
        std::filesystem::remove(ns.pin_dir + "/nlb_conns6", ec);
        dp = Dataplane::adopt(ns.pin_dir);
        REQUIRE(dp);
        dp->detach();
    }
}

} // namespace test_map_migration
