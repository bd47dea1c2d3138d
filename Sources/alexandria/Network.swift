import AlexandriaCatalog
import AlexandriaCore
import AlexandriaHome
import AlexandriaPeer
import ArgumentParser
import Foundation

/// What the local node last wrote about itself, and its peer table; nil when no node has run on this home.
enum LocalNode {
    static func state(_ home: Home) -> NodeState? {
        guard let data = FileManager.default.contents(atPath: home.nodeStatePath) else { return nil }
        return try? JSONDecoder().decode(NodeState.self, from: data)
    }

    static func table(_ home: Home) -> [PeerEntry] {
        guard let data = FileManager.default.contents(atPath: home.peerTablePath) else { return [] }
        return (try? JSONDecoder().decode([PeerEntry].self, from: data)) ?? []
    }

    /// Whether the node that wrote the state runs: it did not say it stopped, its process is alive, and the state
    /// is fresh (the node rewrites it every two seconds).
    static func isRunning(_ state: NodeState) -> Bool {
        if state.stopped == true { return false }
        if let pid = state.pid, pid > 0, kill(pid, 0) != 0, errno == ESRCH { return false }
        return Date().timeIntervalSince1970 - state.updated < 10
    }

    /// "running", "stopped", or "not running" with why.
    static func describe(_ state: NodeState) -> String {
        if isRunning(state) { return "running" }
        if state.stopped == true { return "stopped" }
        return "NOT running (it stopped without saying so: its process is gone or its state is old)"
    }

    /// How long a command with no peer waits for the running node of this home to connect to one.
    static let peerWaitSeconds: Double = 15

    /// `peers(for:)`, and when that is empty while a node runs on this home (it may have just started, its state file
    /// not yet listing a connection), polls for up to `peerWaitSeconds`, having printed `why` and that it waits.
    /// Empty when no node runs or none connected in time.
    static func waitForPeers(
        for address: ContentHash?, home: Home, catalog: Catalog, why: String
    ) async throws
        -> [PeerAddress]
    {
        let now = peers(for: address, home: home, catalog: catalog)
        guard now.isEmpty, let state = state(home), isRunning(state) else { return now }
        // On stderr: it is progress, and stdout may carry --json.
        Output.errorRaw("\(why); waiting up to \(Int(peerWaitSeconds)) s for the running node to connect to a peer")
        let deadline = Date().addingTimeInterval(peerWaitSeconds)
        while Date() < deadline {
            try await Task.sleep(nanoseconds: 500_000_000)
            let peers = peers(for: address, home: home, catalog: catalog)
            if !peers.isEmpty { return peers }
        }
        return []
    }

    /// After the peers in `tried` could not provide `manifest` while a node runs on this home (it has just joined:
    /// it knows the release, not yet who holds it), waits up to `peerWaitSeconds` for peers it has not tried, holders
    /// first, as availability gossip and peer exchange reach the node, saying so. Empty if none came.
    static func waitForHolders(
        of manifest: ContentHash, home: Home, catalog: Catalog, tried: [PeerAddress], why: String
    ) async throws -> [PeerAddress] {
        guard let state = state(home), isRunning(state) else { return [] }
        Output.errorRaw(
            "\(why); waiting up to \(Int(peerWaitSeconds)) s for the running node to learn who holds it")
        let deadline = Date().addingTimeInterval(peerWaitSeconds)
        while Date() < deadline {
            try await Task.sleep(nanoseconds: 500_000_000)
            let fresh = peers(for: manifest, home: home, catalog: catalog).filter { !tried.contains($0) }
            if !fresh.isEmpty { return fresh }
        }
        return []
    }

    /// Peers to fetch from when none was given: the live holders of the releases that contain `address` (or of the
    /// release itself) first, then the most recently seen peers of the table, at most `limit`.
    static func peers(for address: ContentHash?, home: Home, catalog: Catalog, limit: Int = 8) -> [PeerAddress] {
        var table = self.table(home)
        // Peers the running node is connected to, in case the table was not written yet.
        for p in state(home)?.peers ?? [] where !table.contains(where: { $0.key == p.id }) {
            if let a = PeerAddress(parsing: p.address) {
                table.append(PeerEntry(key: p.id, host: a.host, port: a.port, lastSeen: Date().timeIntervalSince1970))
            }
        }
        var holders: [String] = []
        if let address {
            var manifests = (try? catalog.manifests(containing: address)) ?? []
            if (try? catalog.manifestOrEvidence(id: address)) != nil { manifests.insert(address, at: 0) }
            for m in manifests { holders += ((try? catalog.holders(of: m)) ?? []).map { Hex.encode($0) } }
        }
        return PeerChoice.candidates(holders: holders, table: table, now: Date().timeIntervalSince1970, limit: limit)
    }
}

struct Peers: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the node's peers: connections with scores, and the peer table.",
        discussion: "Reads what `node run` on this home last wrote (every two seconds).")

    @OptionGroup var options: HomeOptions
    @Flag(help: "Print as JSON.") var json = false
    @Flag(help: "Also list every entry of the peer table.") var all = false

    func run() throws {
        let home = options.resolved
        let state = LocalNode.state(home)
        let table = LocalNode.table(home)
        if json {
            struct Report: Encodable {
                let running: Bool
                let connected: [NodeState.Peer]
                let table: [PeerEntry]
            }
            return try Output.json(
                Report(running: state.map(LocalNode.isRunning) ?? false, connected: state?.peers ?? [], table: table))
        }
        guard let state else {
            Output.line("no node has run on this home (start one with `alexandria node run`)")
            return
        }
        Output.line(
            "node ed25519:\(state.node.prefix(16)) \(LocalNode.describe(state)); "
                + "\(state.peers.count) connected, \(table.count) in the table")
        Output.line("  id                       address                dir  score   connected")
        for p in state.peers {
            Output.line(
                "  ed25519:\(p.id.prefix(16))  \(p.address.padding(toLength: 22, withPad: " ", startingAt: 0)) "
                    + "\(p.direction.padding(toLength: 4, withPad: " ", startingAt: 0)) "
                    + String(format: "%5.1f  %6.0f s", p.score, p.connectedSeconds))
        }
        if all {
            Output.line("table (most recently seen first):")
            for e in table.sorted(by: { $0.lastSeen > $1.lastSeen }) {
                let ago = Date().timeIntervalSince1970 - e.lastSeen
                Output.line(
                    "  ed25519:\(e.key.prefix(16))  \(e.host):\(e.port)  seen \(Int(ago)) s ago  score "
                        + String(format: "%.1f", e.score) + (e.failures > 0 ? "  \(e.failures) failed dials" : ""))
            }
        }
    }
}

/// `pin` and `unpin`: resolve a release, then set or clear its pin.
protocol PinCommand: ParsableCommand {
    var options: HomeOptions { get }
    var ref: String { get }
    static var pins: Bool { get }
}

extension PinCommand {
    func run() throws {
        let home = options.resolved
        let registry = try openRegistry(home)
        let resolved = try resolve(ref, home: home, registry: registry)
        if Self.pins {
            try registry.catalog.pin(resolved.manifest.id)
        } else {
            try registry.catalog.unpin(resolved.manifest.id)
        }
        Output.line(
            "\(Self.pins ? "pinned" : "unpinned") \(resolved.manifest.manifest.release) (\(resolved.manifest.id))")
    }
}

struct Pin: PinCommand {
    static let configuration = CommandConfiguration(
        abstract: "Keep a release on this node whatever the budget says (the mirror pulls it if missing).")
    static let pins = true
    @OptionGroup var options: HomeOptions
    @Argument(help: "A manifest id or publisher/name@version.") var ref: String
}

struct Unpin: PinCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop keeping a release whatever the budget says; it stays while the policy and budget allow.")
    static let pins = false
    @OptionGroup var options: HomeOptions
    @Argument(help: "A manifest id or publisher/name@version.") var ref: String
}
