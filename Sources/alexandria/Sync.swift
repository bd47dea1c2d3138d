import AlexandriaCatalog
import AlexandriaCore
import AlexandriaHome
import AlexandriaManifest
import AlexandriaPeer
import ArgumentParser
import Foundation
import Logging

struct Sync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring an imported publisher key's log up to date from peers, so `publish` can append to it.",
        discussion: """
            Asks every peer (--peer, config's [node] peers, the peer table and the running node's connections) for \
            the publisher's log, verifies what they answer (signatures, log, checkpoint) into the catalog, and marks \
            the key synced once at least one peer answered. The question names a release of the publisher this \
            node already knows (a running node learns them by gossip); a publisher with no release known here \
            cannot be synced this way.
            """)

    @OptionGroup var options: HomeOptions
    @Option(help: "The publisher key to sync (default: every imported key not yet synced).") var key: String?
    @Option(help: "A peer HOST:PORT (repeatable; adds to config's [node] peers and the peer table).")
    var peer: [String] = []

    func run() async throws {
        let home = options.resolved
        let keys = home.publisherKeys
        let names =
            try key.map { [$0] }
            ?? keys.list().filter { !$0.retired && keys.origin($0.name) == "imported" }
            .map(\.name)
        guard !names.isEmpty else {
            Output.line("no imported key waits for a sync; `publish` needs none")
            return
        }
        var peers: [PeerAddress] = []
        for text in peer + (try home.config()).peers {
            guard let p = PeerAddress(parsing: text) else {
                throw CommandFailure(message: "not HOST:PORT: \(text)", exitCode: 2)
            }
            if !peers.contains(p) { peers.append(p) }
        }
        let registry = try openRegistry(home)
        if peers.isEmpty {
            peers = try await LocalNode.waitForPeers(
                for: nil, home: home, catalog: registry.catalog, why: "no peer is known yet")
        } else {
            for p in LocalNode.peers(for: nil, home: home, catalog: registry.catalog) where !peers.contains(p) {
                peers.append(p)
            }
        }
        guard !peers.isEmpty else {
            throw CommandFailure(
                message: "no peer to ask: none given (--peer HOST:PORT), none in config's [node] peers, and no running "
                    + "node on this home with connections or a peer table (`alexandria node run --peer HOST:PORT`)",
                exitCode: 2)
        }
        let fetcher = Fetcher(
            store: registry.store, identity: NodeIdentity(key: try home.nodeKey()),
            logger: {
                var logger = Logger(label: "alexandria.sync")
                logger.logLevel = .warning
                return logger
            }())
        for name in names {
            let publisher = try keys.publisher(of: name)
            guard let release = try registry.catalog.log(publisher)?.releases.keys.sorted().first,
                let at = release.firstIndex(of: "@")
            else {
                throw CommandFailure(
                    message: "no release of \(publisher.short) (\(name)) is known here, so there is nothing to ask "
                        + "peers for: run `alexandria node run` with peers until it has gossiped the catalog and sync "
                        + "again, or publish with --assume-log-current if this key has never published")
            }
            let before = try registry.catalog.log(publisher)?.size ?? 0
            var answered: [String] = []
            var reasons: [String] = []
            for p in peers {
                do {
                    try await Fetch.importManifest(
                        .release(
                            publisher: publisher.description, name: String(release[..<at]),
                            version: String(release[release.index(after: at)...])),
                        from: [p], fetcher: fetcher, registry: registry, quiet: true)
                    answered.append(p.description)
                } catch {
                    reasons.append("\(p): \(error)")
                }
            }
            guard !answered.isEmpty else {
                throw CommandFailure(
                    message: "no peer answered for \(publisher.short)'s log; \(name) stays unsynced "
                        + "(\(reasons.joined(separator: "; ")))")
            }
            try keys.markSynced(name)
            let after = try registry.catalog.log(publisher)?.size ?? 0
            Output.line(
                "synced \(name) (\(publisher.short)…): log has \(after) entries (\(after - before) new), checked "
                    + "against \(answered.count) of \(peers.count) peer(s); `publish` appends after entry \(after - 1)")
            for r in reasons { Output.warning("\(r)") }
        }
    }
}
