import AlexandriaMetrics
import Foundation

extension GossipNode {
    /// Sets the peer gauges: `alexandria_peers{state}` over this node's connected peers and peer table (each peer in
    /// one state: connected; else banned, backoff after a failed dial, or idle) and
    /// `alexandria_peers_connected{direction}`. Every state is set, zeros included, so a peer leaving a state shows.
    public func recordMetrics() {
        let now = Date().timeIntervalSince1970
        let links = core.links
        let inbound = links.values.filter { !$0.outbound }.count
        var (banned, backoff, idle) = (0, 0, 0)
        for (hex, entry) in core.table.entries where links[hex] == nil && hex != selfHex {
            if entry.bannedUntil > now {
                banned += 1
            } else if entry.failures > 0 {
                backoff += 1
            } else {
                idle += 1
            }
        }
        NodeMetrics.set(.peers, Double(links.count), [("state", "connected")])
        NodeMetrics.set(.peers, Double(banned), [("state", "banned")])
        NodeMetrics.set(.peers, Double(backoff), [("state", "backoff")])
        NodeMetrics.set(.peers, Double(idle), [("state", "idle")])
        NodeMetrics.set(.peersConnected, Double(inbound), [("direction", "inbound")])
        NodeMetrics.set(.peersConnected, Double(links.count - inbound), [("direction", "outbound")])
    }
}
