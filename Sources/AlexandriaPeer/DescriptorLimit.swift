#if canImport(Glibc)
    import Glibc
#endif

/// How many file descriptors a node needs, and the process limit (RLIMIT_NOFILE) it runs under.
///
/// Every connection is a descriptor, and so is every pack file the store reads from (it keeps one open per pack).
/// A shell gives processes a soft limit of 1,024 (systemd too, unless the unit sets `LimitNOFILE=`), and root's
/// limits are whatever root set, so a node tested as root never meets it. Running out does not fail cleanly: the
/// kernel refuses new connections and file opens with EMFILE at whatever point the node reaches the limit.
public struct DescriptorNeed: Sendable, Equatable {
    /// `[node] inbound`: connections accepted from other nodes.
    public var inbound: Int
    /// `[node] outbound`: connections kept to other nodes.
    public var outbound: Int
    /// Pack files in the store (one descriptor each while readers use them).
    public var packs: Int

    /// Connections a node also holds beyond its gossip links: fetch clients served and the mirror's own fetches.
    public static let transferConnections = 32
    /// Everything else: standard streams, the event loops' epoll and eventfd descriptors, the SQLite index and
    /// catalog with their WAL and shared-memory files and pooled read connections, pack appenders, the log.
    public static let fixed = 96

    public init(inbound: Int, outbound: Int, packs: Int) {
        self.inbound = inbound
        self.outbound = outbound
        self.packs = packs
    }

    /// The descriptors the node may hold at once.
    public var total: Int { inbound + outbound + Self.transferConnections + packs + Self.fixed }

    /// One line saying where the number comes from.
    public var explanation: String {
        "\(inbound) inbound + \(outbound) outbound + \(Self.transferConnections) transfers + \(packs) pack files "
            + "+ \(Self.fixed) for the store, catalog and event loops"
    }
}

/// The process's RLIMIT_NOFILE.
public struct DescriptorLimit: Sendable, Equatable {
    /// The limit the process runs under; `nil` means unlimited.
    public var soft: UInt64?
    /// The most an unprivileged process may raise `soft` to; `nil` means unlimited.
    public var hard: UInt64?

    public init(soft: UInt64?, hard: UInt64?) {
        self.soft = soft
        self.hard = hard
    }

    /// The current limit.
    public static func current() -> DescriptorLimit {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else {
            return DescriptorLimit(soft: nil, hard: nil)
        }
        func value(_ v: rlim_t) -> UInt64? { v == rlim_t.max ? nil : UInt64(v) }  // RLIM_INFINITY
        return DescriptorLimit(soft: value(limit.rlim_cur), hard: value(limit.rlim_max))
    }

    /// Whether `need` descriptors fit.
    public func covers(_ need: Int) -> Bool { soft.map { $0 >= UInt64(need) } ?? true }

    /// Raises the soft limit so it covers twice `need` (packs keep being added while the node runs), never above the
    /// hard limit, and never lowers it. Any process may do this; only the hard limit needs privilege. Returns the
    /// limit in force afterwards.
    @discardableResult
    public static func raise(toCover need: Int) -> DescriptorLimit {
        let now = current()
        guard let soft = now.soft else { return now }
        let wanted = UInt64(need) * 2
        guard soft < wanted else { return now }
        let target = now.hard.map { min($0, wanted) } ?? wanted
        guard target > soft else { return now }
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return now }
        limit.rlim_cur = rlim_t(target)
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return current()
    }

    public var description: String {
        "soft \(soft.map(String.init) ?? "unlimited"), hard \(hard.map(String.init) ?? "unlimited")"
    }
}
