#include "map_migration.hpp"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "errstr.hpp"

namespace nlb {

namespace {

bpf_map_info map_info(int fd) {
    bpf_map_info info{};
    __u32 len = sizeof(info);
    if (int err = bpf_obj_get_info_by_fd(fd, &info, &len))
        throw std::runtime_error(std::string("map info: ") + errstr(err));
    return info;
}

bool per_cpu(__u32 type) {
    return type == BPF_MAP_TYPE_PERCPU_ARRAY || type == BPF_MAP_TYPE_PERCPU_HASH ||
           type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}

struct BtfHandle {
    btf* b = nullptr;
    explicit BtfHandle(__u32 id) : b(id ? btf__load_from_kernel_by_id(id) : nullptr) {
        if (b && libbpf_get_error(b))
            b = nullptr;
    }
    ~BtfHandle() { btf__free(b); }
    BtfHandle(const BtfHandle&) = delete;
    BtfHandle& operator=(const BtfHandle&) = delete;
};

// Kernel objects in a value (a timer, a lock) belong to the map that holds them: never copied.
bool kernel_object(const btf* b, const btf_type* t) {
    const char* name = btf__name_by_offset(b, t->name_off);
    return btf_is_struct(t) && name &&
           (!std::strcmp(name, "bpf_timer") || !std::strcmp(name, "bpf_spin_lock") ||
            !std::strcmp(name, "bpf_wq"));
}

bool contains_kernel_object(const btf* b, __u32 id, int depth) {
    int rid = btf__resolve_type(b, id);
    if (rid < 0 || depth > 16)
        return false;
    const btf_type* t = btf__type_by_id(b, static_cast<__u32>(rid));
    if (kernel_object(b, t))
        return true;
    if (btf_is_array(t))
        return contains_kernel_object(b, btf_array(t)->type, depth + 1);
    if (btf_is_composite(t)) {
        const btf_member* m = btf_members(t);
        for (unsigned i = 0; i < btf_vlen(t); ++i)
            if (contains_kernel_object(b, m[i].type, depth + 1))
                return true;
    }
    if (btf_is_datasec(t)) {
        const btf_var_secinfo* v = btf_var_secinfos(t);
        for (unsigned i = 0; i < btf_vlen(t); ++i)
            if (contains_kernel_object(b, btf__type_by_id(b, v[i].type)->type, depth + 1))
                return true;
    }
    return false;
}

struct CopyOp {
    std::size_t from;
    std::size_t to;
    std::size_t len;
};

// The byte copies that turn one layout into the other, found by walking the new type and
// looking each named field up in the old one.
class PlanBuilder {
  public:
    PlanBuilder(const btf* from, const btf* to) : from_(from), to_(to) {}

    void walk(__u32 from_id, __u32 to_id, std::size_t from_off, std::size_t to_off,
              const std::string& path, int depth) {
        if (depth > 16)
            throw std::runtime_error(path + ": nested too deep");
        int fr = btf__resolve_type(from_, from_id);
        int tr = btf__resolve_type(to_, to_id);
        if (fr < 0 || tr < 0)
            throw std::runtime_error(path + ": unresolvable BTF type");
        const btf_type* f = btf__type_by_id(from_, static_cast<__u32>(fr));
        const btf_type* t = btf__type_by_id(to_, static_cast<__u32>(tr));
        if (kernel_object(to_, t))
            return;
        if (btf_is_composite(t)) {
            if (!btf_is_composite(f))
                return missing(path);
            const btf_member* m = btf_members(t);
            for (unsigned i = 0; i < btf_vlen(t); ++i) {
                if (btf_member_bitfield_size(t, i))
                    throw std::runtime_error(path + ": bit fields are not migrated");
                const std::size_t off = to_off + btf_member_bit_offset(t, i) / 8;
                const char* name = btf__name_by_offset(to_, m[i].name_off);
                if (!name || !*name) { // anonymous: its fields are the enclosing type's
                    walk(fr, m[i].type, from_off, off, path, depth + 1);
                    continue;
                }
                const std::string sub = path + "." + name;
                __u32 from_type = 0;
                std::size_t from_at = 0;
                if (find_member(f, name, from_off, from_type, from_at, 0))
                    walk(from_type, m[i].type, from_at, off, sub, depth + 1);
                else
                    missing(sub);
            }
            return;
        }
        if (btf_is_datasec(t)) {
            if (!btf_is_datasec(f))
                return missing(path);
            const btf_var_secinfo* v = btf_var_secinfos(t);
            for (unsigned i = 0; i < btf_vlen(t); ++i) {
                const btf_type* var = btf__type_by_id(to_, v[i].type);
                const char* name = btf__name_by_offset(to_, var->name_off);
                const std::string sub = path + "." + (name ? name : "?");
                const btf_var_secinfo* fv = btf_var_secinfos(f);
                bool found = false;
                for (unsigned j = 0; j < btf_vlen(f) && !found; ++j) {
                    const btf_type* fvar = btf__type_by_id(from_, fv[j].type);
                    const char* fname = btf__name_by_offset(from_, fvar->name_off);
                    if (name && fname && !std::strcmp(name, fname)) {
                        walk(fvar->type, var->type, from_off + fv[j].offset, to_off + v[i].offset,
                             sub, depth + 1);
                        found = true;
                    }
                }
                if (!found)
                    missing(sub);
            }
            return;
        }
        if (btf_is_array(t)) {
            if (!btf_is_array(f))
                return missing(path);
            const struct btf_array* fa = btf_array(f);
            const struct btf_array* ta = btf_array(t);
            const __s64 fe = btf__resolve_size(from_, fa->type);
            const __s64 te = btf__resolve_size(to_, ta->type);
            if (fe <= 0 || te <= 0)
                throw std::runtime_error(path + ": array of unsized elements");
            const __u32 n = std::min(fa->nelems, ta->nelems);
            for (__u32 k = 0; k < n; ++k)
                walk(fa->type, ta->type, from_off + k * static_cast<std::size_t>(fe),
                     to_off + k * static_cast<std::size_t>(te), path + "[]", depth + 1);
            if (ta->nelems > n)
                missing(path + "[" + std::to_string(n) + "..]");
            return;
        }
        // A scalar: copied when the old one is a scalar of the same kind and size.
        const bool same_kind = (btf_is_int(t) || btf_is_any_enum(t))
                                   ? (btf_is_int(f) || btf_is_any_enum(f))
                                   : BTF_INFO_KIND(t->info) == BTF_INFO_KIND(f->info);
        const __s64 fs = btf__resolve_size(from_, static_cast<__u32>(fr));
        const __s64 ts = btf__resolve_size(to_, static_cast<__u32>(tr));
        if (!same_kind || fs != ts || ts <= 0)
            return missing(path);
        add(from_off, to_off, static_cast<std::size_t>(ts));
    }

    std::vector<CopyOp> ops;
    std::vector<std::string> unmatched; // fields of the new layout that start at zero

  private:
    // A named field of `t` (or of its anonymous members), as type and byte offset.
    bool find_member(const btf_type* t, const char* name, std::size_t base, __u32& type,
                     std::size_t& at, int depth) const {
        if (depth > 16)
            return false;
        const btf_member* m = btf_members(t);
        for (unsigned i = 0; i < btf_vlen(t); ++i) {
            const std::size_t off = base + btf_member_bit_offset(t, i) / 8;
            const char* n = btf__name_by_offset(from_, m[i].name_off);
            if (n && *n) {
                if (!std::strcmp(n, name) && !btf_member_bitfield_size(t, i)) {
                    type = m[i].type;
                    at = off;
                    return true;
                }
                continue;
            }
            int r = btf__resolve_type(from_, m[i].type);
            const btf_type* sub = r < 0 ? nullptr : btf__type_by_id(from_, static_cast<__u32>(r));
            if (sub && btf_is_composite(sub) && find_member(sub, name, off, type, at, depth + 1))
                return true;
        }
        return false;
    }

    void missing(const std::string& path) { unmatched.push_back(path); }

    void add(std::size_t from, std::size_t to, std::size_t len) {
        if (!ops.empty() && ops.back().from + ops.back().len == from &&
            ops.back().to + ops.back().len == to) {
            ops.back().len += len;
            return;
        }
        ops.push_back({from, to, len});
    }

    const btf* from_;
    const btf* to_;
};

bool is_padding(const std::string& path) {
    std::size_t dot = path.rfind('.');
    std::string leaf = path.substr(dot == std::string::npos ? 0 : dot + 1);
    return leaf.rfind("pad", 0) == 0;
}

} // namespace

struct MapMigration::Plan {
    std::vector<CopyOp> key_ops;
    std::vector<CopyOp> value_ops;
    std::size_t from_key = 0, to_key = 0;     // key sizes
    std::size_t from_value = 0, to_value = 0; // per-CPU slot sizes of the values
    std::size_t cpus = 1;                     // value slots per entry
    __u32 from_entries = 0;
};

bool pin_reusable(int pinned_fd, const bpf_map* map) {
    bpf_map_info info{};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(pinned_fd, &info, &len))
        return false;
    return info.type == static_cast<__u32>(bpf_map__type(map)) &&
           info.key_size == bpf_map__key_size(map) && info.value_size == bpf_map__value_size(map) &&
           info.max_entries == bpf_map__max_entries(map) &&
           info.map_flags == bpf_map__map_flags(map);
}

bool holds_kernel_object(int map_fd) {
    bpf_map_info info = map_info(map_fd);
    BtfHandle b(info.btf_id);
    return b.b && info.btf_value_type_id && contains_kernel_object(b.b, info.btf_value_type_id, 0);
}

MapMigration::MapMigration(int from_fd, int to_fd)
    : plan_(std::make_unique<Plan>()), from_fd_(from_fd), to_fd_(to_fd) {
    const bpf_map_info from = map_info(from_fd);
    const bpf_map_info to = map_info(to_fd);
    if (per_cpu(from.type) != per_cpu(to.type))
        throw std::runtime_error("a per-CPU map and a shared one cannot be converted");
    Plan& p = *plan_;
    p.from_key = from.key_size;
    p.to_key = to.key_size;
    p.from_entries = from.max_entries;
    if (per_cpu(to.type)) {
        int n = libbpf_num_possible_cpus();
        if (n <= 0)
            throw std::runtime_error("possible CPUs: " + errstr(n));
        p.cpus = static_cast<std::size_t>(n);
        p.from_value = (from.value_size + 7) / 8 * 8;
        p.to_value = (to.value_size + 7) / 8 * 8;
    } else {
        p.from_value = from.value_size;
        p.to_value = to.value_size;
    }
    BtfHandle fb(from.btf_id);
    BtfHandle tb(to.btf_id);
    // Keys: a key the new layout names but the old one lacks would be made up.
    if (from.btf_key_type_id && to.btf_key_type_id && fb.b && tb.b) {
        PlanBuilder keys(fb.b, tb.b);
        keys.walk(from.btf_key_type_id, to.btf_key_type_id, 0, 0, "key", 0);
        for (const std::string& f : keys.unmatched)
            if (!is_padding(f))
                throw std::runtime_error(f + " is new in this layout");
        p.key_ops = std::move(keys.ops);
    } else if (from.key_size == to.key_size) { // an array's index, or no BTF: the same bytes
        p.key_ops.push_back({0, 0, from.key_size});
    } else {
        throw std::runtime_error("the key changed size (" + std::to_string(from.key_size) + " to " +
                                 std::to_string(to.key_size) + ") and has no BTF");
    }
    if (from.btf_value_type_id && to.btf_value_type_id && fb.b && tb.b) {
        PlanBuilder values(fb.b, tb.b);
        values.walk(from.btf_value_type_id, to.btf_value_type_id, 0, 0, "value", 0);
        p.value_ops = std::move(values.ops);
    } else if (from.value_size == to.value_size) {
        p.value_ops.push_back({0, 0, from.value_size});
    } else {
        throw std::runtime_error("the value changed size and has no BTF");
    }
    // BTF that disagrees with the sizes the kernel holds is not trusted.
    for (const CopyOp& op : p.key_ops)
        if (op.from + op.len > p.from_key || op.to + op.len > p.to_key)
            throw std::runtime_error("key BTF exceeds the key size");
    for (const CopyOp& op : p.value_ops)
        if (op.from + op.len > from.value_size || op.to + op.len > to.value_size)
            throw std::runtime_error("value BTF exceeds the value size");
}

MapMigration::~MapMigration() = default;

MigrationCount MapMigration::copy(bool only_missing) const {
    const Plan& p = *plan_;
    std::vector<std::uint8_t> key(p.from_key), next(p.from_key), new_key(p.to_key);
    std::vector<std::uint8_t> value(p.from_value * p.cpus), new_value(p.to_value * p.cpus);
    MigrationCount count;
    // The old map may still change under an attached program: a deleted key restarts the
    // walk, so the walk is bounded, not trusted to end.
    const std::uint64_t bound = 2ULL * p.from_entries + 2;
    bool first = true;
    for (std::uint64_t step = 0; step < bound; ++step) {
        if (bpf_map_get_next_key(from_fd_, first ? nullptr : key.data(), next.data()))
            break;
        first = false;
        key = next;
        if (bpf_map_lookup_elem(from_fd_, key.data(), value.data()))
            continue; // gone meanwhile
        std::fill(new_key.begin(), new_key.end(), 0);
        for (const CopyOp& op : p.key_ops)
            std::memcpy(new_key.data() + op.to, key.data() + op.from, op.len);
        if (only_missing && bpf_map_lookup_elem(to_fd_, new_key.data(), new_value.data()) == 0) {
            ++count.present;
            continue;
        }
        std::fill(new_value.begin(), new_value.end(), 0);
        for (std::size_t cpu = 0; cpu < p.cpus; ++cpu)
            for (const CopyOp& op : p.value_ops)
                std::memcpy(new_value.data() + cpu * p.to_value + op.to,
                            value.data() + cpu * p.from_value + op.from, op.len);
        if (bpf_map_update_elem(to_fd_, new_key.data(), new_value.data(), BPF_ANY) == 0) {
            ++count.copied;
        } else if (errno == E2BIG || errno == ENOMEM || errno == ENOSPC) {
            ++count.refused;
        } else {
            throw std::runtime_error("copy an entry: " + errstr(errno));
        }
    }
    return count;
}

} // namespace nlb
