import AlexandriaCore

/// How a fetch picks its peers: the one place this policy lives. The CLI (`fetch`, `sync` with no `--peer`), the
/// mirror's replication, the gateway's pull-through and the fetcher all ask it. No I/O: the caller passes what it
/// knows (holders from availability gossip, connections, the peer table) and the clock.
public enum PeerChoice {
    /// Peers worth asking for content, in the order to ask them, deduplicated, this node left out:
    /// 1. `explicit` peers (given by the user or the config), as given;
    /// 2. the listen addresses of `holders` (node keys, hex, from availability gossip), as given;
    /// 3. the peers this node is `connected` to (node keys, hex);
    /// 4. the `table`'s entries not banned at `now`, most recently seen first (only up to `limit`).
    /// A key's address comes from `addresses`, else from the table. Entries with no listen port are skipped.
    public static func candidates(
        explicit: [PeerAddress] = [], holders: [String] = [], connected: [String] = [],
        addresses: [String: PeerAddress] = [:], table: [PeerEntry] = [], selfKey: String? = nil, now: Double,
        limit: Int? = nil
    ) -> [PeerAddress] {
        var byKey: [String: PeerAddress] = [:]
        for e in table where e.port > 0 { byKey[e.key] = PeerAddress(host: e.host, port: e.port) }
        for (key, address) in addresses { byKey[key] = address }
        var out: [PeerAddress] = []
        func add(_ address: PeerAddress) {
            if address.port > 0, !out.contains(address) { out.append(address) }
        }
        explicit.forEach(add)
        for key in holders + connected where key != selfKey {
            if let a = byKey[key] { add(a) }
        }
        for e in table.sorted(by: { $0.lastSeen > $1.lastSeen })
        where e.key != selfKey && e.bannedUntil < now && out.count < (limit ?? Int.max) {
            add(PeerAddress(host: e.host, port: e.port))
        }
        return out
    }

    /// The rounds a fetch works in: peers that misbehaved in an earlier fetch (a negative score) only after the
    /// others have done what they can. Empty rounds are left out.
    public static func rounds(_ peers: [PeerAddress], scores: PeerScores?) -> [[PeerAddress]] {
        let penalized = Set(peers.filter { (scores?.score(of: $0.description) ?? 0) < 0 })
        return [peers.filter { !penalized.contains($0) }, peers.filter { penalized.contains($0) }].filter {
            !$0.isEmpty
        }
    }
}
