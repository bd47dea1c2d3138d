import AlexandriaWire
import NIOCore

/// Which authenticated plain clients (HELLO `listenPort` 0: fetches) a node keeps, by source address
/// (Protocol/wire-v1.md, "Connection limits"). No I/O: the server asks it on every admission and release, and closes
/// what it says to evict.
///
/// - At most `perAddress` clients from one IP address.
/// - At most `total` clients in all. When full, a newcomer still gets in if some address holds more than one
///   connection more than the newcomer's address would: that address's oldest connection is evicted. So an attacker
///   with fewer addresses than `total` cannot lock a new address out; it can only hold its fair share.
public struct ClientAdmission: Sendable {
    public struct Limits: Sendable, Equatable {
        /// `[node] clients`: plain clients connected at once.
        public var total = 256
        /// `[node] clients_per_address`: plain clients from one IP address.
        public var perAddress = 16
        public init() {}
        public init(total: Int, perAddress: Int) {
            self.total = total
            self.perAddress = perAddress
        }
    }

    public enum Decision: Equatable, Sendable {
        /// Keep the connection under `ticket`; close the connection holding `evict` first, if set.
        case admit(ticket: Int, evict: Int?)
        /// Refuse it: send ERROR(`overloaded`) and close.
        case refuse(reason: String)
    }

    public let limits: Limits
    /// Ticket (admission order) to address.
    private var clients: [Int: String] = [:]
    private var countByAddress: [String: Int] = [:]
    private var nextTicket = 0

    public init(limits: Limits) { self.limits = limits }

    public var count: Int { clients.count }

    public func count(from address: String) -> Int { countByAddress[address] ?? 0 }

    public mutating func admit(address: String) -> Decision {
        let mine = count(from: address)
        guard mine < limits.perAddress else {
            return .refuse(reason: "\(mine) clients from \(address) already; the limit is \(limits.perAddress)")
        }
        guard limits.total > 0 else { return .refuse(reason: "this node serves no plain clients") }
        var evict: Int?
        if clients.count >= limits.total {
            // Full: take a slot from the address holding the most, if that is fairer than refusing.
            guard let (heaviest, held) = countByAddress.max(by: { ($0.value, $1.key) < ($1.value, $0.key) }),
                held > mine + 1,
                let oldest = clients.filter({ $0.value == heaviest }).keys.min()
            else {
                return .refuse(reason: "\(clients.count) clients connected; the limit is \(limits.total)")
            }
            release(oldest)
            evict = oldest
        }
        let ticket = nextTicket
        nextTicket += 1
        clients[ticket] = address
        countByAddress[address, default: 0] += 1
        return .admit(ticket: ticket, evict: evict)
    }

    /// A client's connection ended (or was evicted). Releasing an unknown ticket does nothing.
    public mutating func release(_ ticket: Int) {
        guard let address = clients.removeValue(forKey: ticket) else { return }
        let left = (countByAddress[address] ?? 1) - 1
        countByAddress[address] = left > 0 ? left : nil
    }
}

/// The server's shell around `ClientAdmission`: it remembers each admitted client's channel, so that an eviction
/// closes the right connection (with ERROR(`overloaded`) first).
actor ClientGate {
    private var admission: ClientAdmission
    private var channels: [Int: Channel] = [:]

    init(limits: ClientAdmission.Limits) { admission = ClientAdmission(limits: limits) }

    /// Admits a client, or returns why not.
    func admit(address: String, channel: Channel) -> Result<Int, WireError> {
        switch admission.admit(address: address) {
        case .refuse(let reason):
            return .failure(WireError(.overloaded, reason))
        case .admit(let ticket, let evict):
            if let evict, let victim = channels.removeValue(forKey: evict) {
                victim.writeAndFlush(WireMessage.error(.overloaded, "too many clients from your address"))
                    .whenComplete { _ in victim.close(promise: nil) }
            }
            channels[ticket] = channel
            return .success(ticket)
        }
    }

    func release(_ ticket: Int) {
        admission.release(ticket)
        channels.removeValue(forKey: ticket)
    }

    /// Graceful shutdown: closes every client connection, so a client that keeps its connection alive with PINGs
    /// cannot hold the node's exit.
    func closeAll() {
        for channel in channels.values { channel.close(promise: nil) }
    }
}
