import AlexandriaCore
import AlexandriaWire
import Foundation

/// One entry of the peer table.
public struct PeerEntry: Codable, Sendable, Equatable {
    public var key: String
    public var host: String
    public var port: Int
    /// Seconds since 1970.
    public var lastSeen: Double
    public var score: Double = 0
    public var failures: Int = 0
    public var lastAttempt: Double = 0
    public var bannedUntil: Double = 0
    /// The node key (hex) of the peer whose PEERS answer named this address; nil for an address this node dialled
    /// and found the key at, a bootstrap address, or an entry from before sources were kept.
    public var source: String?
    /// True once this node dialled the address and the key answered the handshake.
    public var verified: Bool?

    public init(key: String, host: String, port: Int, lastSeen: Double) {
        self.key = key
        self.host = host
        self.port = port
        self.lastSeen = lastSeen
    }
}

/// The peer table and the rules for what other peers may put in it and make this node dial
/// (Protocol/gossip-v1.md, "Discovery"). No I/O and no clock: every call takes the time (seconds since 1970), so
/// the gossip node is a thin shell around it and each rule is tested without a socket.
///
/// - **Admission.** An address named in PEERS enters only if it is dialable (`isDialable`), its source has named
///   fewer than `maxPerSource` entries still held, and there is room: the table holds `maxEntries` at most, and
///   when full an unverified entry (the least recently seen) makes room; verified entries are never evicted by
///   hearsay.
/// - **No redirection.** PEERS never moves a verified address that has not failed since it was verified.
/// - **Dial budget.** Dials of an unverified address spend its source's budget: `dialBurst` at once, one more
///   every `dialRefillSeconds`. So a peer can make this node dial the addresses it names no faster than that,
///   however many it names.
public struct PeerTable: Sendable {
    public struct Limits: Sendable {
        public var maxEntries = 4096
        /// Unverified entries one peer's answers may hold in the table. An honest answer names at most 32.
        public var maxPerSource = 64
        public var dialBurst = 8.0
        public var dialRefillSeconds = 5.0
        public init() {}
    }

    /// What one PEERS answer did to the table.
    public struct Learned: Equatable, Sendable {
        public var added = 0
        public var updated = 0
        /// Not dialable (port 0, unspecified, multicast, broadcast, a malformed name).
        public var hostile = 0
        /// Over the source's quota, or no room.
        public var refused = 0
    }

    public let limits: Limits
    public private(set) var entries: [String: PeerEntry] = [:]
    private var budgets: [String: (tokens: Double, at: Double)] = [:]

    public init(limits: Limits = Limits()) { self.limits = limits }

    public var count: Int { entries.count }

    public subscript(key: String) -> PeerEntry? {
        get { entries[key] }
        set { entries[key] = newValue }
    }

    /// Unverified entries a source named that the table still holds.
    public func contributed(by source: String) -> Int {
        entries.values.reduce(0) { $0 + ($1.source == source && $1.verified != true ? 1 : 0) }
    }

    /// A handshake succeeded with `key` on a connection. `dialled`: this node dialled `address`, which verifies it.
    /// An inbound peer's address (its IP and the port its HELLO names) counts as named by the peer itself.
    public mutating func connected(key: String, address: PeerAddress, dialled: Bool, now: Double) {
        let known = entries[key]
        var entry = known ?? PeerEntry(key: key, host: address.host, port: address.port, lastSeen: now)
        let same = entry.host == address.host && entry.port == address.port
        if dialled {
            entry.host = address.host
            entry.port = address.port
            entry.verified = true
            entry.source = nil
        } else if !same && (entry.verified != true || entry.failures > 0) {
            // An inbound peer names its own address; it replaces an unverified or failing one, as its own claim.
            entry.host = address.host
            entry.port = address.port
            entry.verified = nil
            entry.source = key
        } else if known == nil || (same && entry.verified != true) {
            entry.source = key
        }
        if dialled || same { entry.failures = 0 }
        entry.lastSeen = now
        if known == nil { makeRoom(now: now) }
        entries[key] = entry
    }

    /// Takes in a PEERS answer from `source` (whose own key is never learned from it).
    public mutating func learn(_ records: [PeerRecord], from source: String, selfKey: String, now: Double) -> Learned {
        var outcome = Learned()
        for record in records {
            let key = Hex.encode(record.nodeKey)
            guard key != selfKey, key != source else { continue }
            guard Self.isDialable(host: record.host, port: Int(record.port)) else {
                outcome.hostile += 1
                continue
            }
            let seen = min(now, Double(record.lastSeen))
            if var entry = entries[key] {
                let sameAddress = entry.host == record.host && entry.port == Int(record.port)
                if sameAddress {
                    entry.lastSeen = max(entry.lastSeen, seen)
                    entries[key] = entry
                    continue
                }
                // Another address for a known key: only a more recent one, never over a working verified one.
                guard seen > entry.lastSeen, entry.verified != true || entry.failures > 0,
                    contributed(by: source) < limits.maxPerSource
                else {
                    outcome.refused += 1
                    continue
                }
                entry.host = record.host
                entry.port = Int(record.port)
                entry.lastSeen = seen
                entry.verified = nil
                entry.source = source
                entries[key] = entry
                outcome.updated += 1
                continue
            }
            guard contributed(by: source) < limits.maxPerSource, makeRoom(now: now) else {
                outcome.refused += 1
                continue
            }
            var entry = PeerEntry(key: key, host: record.host, port: Int(record.port), lastSeen: seen)
            entry.source = source
            entries[key] = entry
            outcome.added += 1
        }
        return outcome
    }

    /// Makes room for one more entry if the table is full, by evicting the least recently seen unverified entry.
    /// False if every entry is verified.
    @discardableResult
    mutating func makeRoom(now: Double) -> Bool {
        guard entries.count >= limits.maxEntries else { return true }
        guard
            let victim = entries.values.filter({ $0.verified != true }).min(by: {
                ($0.lastSeen, $1.failures) < ($1.lastSeen, $0.failures)
            })
        else { return false }
        entries.removeValue(forKey: victim.key)
        return true
    }

    /// Whether this node may dial `key`'s address now, spending its source's budget if the address is unverified.
    /// Addresses that are not dialable are never dialled.
    public mutating func spendDial(_ key: String, now: Double) -> Bool {
        guard let entry = entries[key], Self.isDialable(host: entry.host, port: entry.port) else { return false }
        guard entry.verified != true, let source = entry.source else { return true }
        var budget = budgets[source] ?? (tokens: limits.dialBurst, at: now)
        budget.tokens = min(limits.dialBurst, budget.tokens + max(0, now - budget.at) / limits.dialRefillSeconds)
        budget.at = now
        guard budget.tokens >= 1 else {
            budgets[source] = budget
            return false
        }
        budget.tokens -= 1
        budgets[source] = budget
        if budgets.count > 4 * limits.maxEntries { budgets = budgets.filter { entries[$0.key] != nil } }
        return true
    }

    /// Whether an address may be dialled at all: a port in 1...65535, and a host that is an IPv4 or IPv6 literal
    /// other than unspecified, "this network" (0.0.0.0/8), multicast, or reserved/broadcast (240.0.0.0/4), or a DNS
    /// name of valid syntax whose last label is not all digits. Loopback and private addresses are allowed: nodes on
    /// one host or one LAN are normal.
    public static func isDialable(host: String, port: Int) -> Bool {
        guard (1...65535).contains(port), !host.isEmpty, host.utf8.count <= 253 else { return false }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            return dialableIPv4(UInt32(bigEndian: v4.s_addr))
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            let bytes = withUnsafeBytes(of: &v6) { Array($0) }
            if bytes.allSatisfy({ $0 == 0 }) || bytes[0] == 0xff { return false }
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
                let mapped = bytes[12..<16].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                return dialableIPv4(mapped)
            }
            return true
        }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        for label in labels {
            guard (1...63).contains(label.utf8.count), label.first != "-", label.last != "-",
                label.utf8.allSatisfy({ $0.isASCIIAlphanumeric || $0 == UInt8(ascii: "-") })
            else { return false }
        }
        return !(labels.last!.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
    }

    static func dialableIPv4(_ address: UInt32) -> Bool {
        let first = address >> 24
        return first != 0 && first < 224
    }
}

extension UInt8 {
    fileprivate var isASCIIAlphanumeric: Bool {
        (self >= UInt8(ascii: "a") && self <= UInt8(ascii: "z"))
            || (self >= UInt8(ascii: "A") && self <= UInt8(ascii: "Z"))
            || (self >= UInt8(ascii: "0") && self <= UInt8(ascii: "9"))
    }
}
