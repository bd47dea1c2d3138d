import AlexandriaCatalog
import AlexandriaCore
import AlexandriaHome
import AlexandriaManifest
import AlexandriaPeer
import AlexandriaWire
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
                    let bundle = try await Fetch.importManifest(
                        .release(
                            publisher: publisher.description, name: String(release[..<at]),
                            version: String(release[release.index(after: at)...])),
                        from: [p], fetcher: fetcher, registry: registry, quiet: true)
                    // Every entry the peer holds must now be in this node's log: one that is not conflicts with it
                    // (the key signed two histories), and appending to either would deepen the fork.
                    let here = Set(try registry.catalog.log(publisher)?.entries.map(\.envelope.payload) ?? [])
                    let foreign = try bundle.entries.filter { !here.contains(try DSSEEnvelope(json: $0).payload) }
                    guard foreign.isEmpty else {
                        try keys.markUnsynced(name)
                        throw CommandFailure(
                            message: "\(p)'s log of \(publisher.short) has \(foreign.count) entr"
                                + "\(foreign.count == 1 ? "y" : "ies") that conflict with this node's copy: the key has "
                                + "signed two histories (a fork). \(name) is marked unsynced; do not publish with it until "
                                + "the fork is understood (`alexandria audit` the publisher's releases)")
                    }
                    answered.append(p.description)
                } catch let error as WireError where error.code == .notFound {
                    // Unreachable, or it does not hold the release: it says nothing about the log.
                    reasons.append("\(p): \(error)")
                } catch let error as CommandFailure {
                    throw error
                } catch {
                    // An answer that does not verify, or conflicts with the log here: never mark the key synced.
                    throw CommandFailure(
                        message: "\(p) answered for \(publisher.short)'s log with something that does not verify "
                            + "against this node's copy (\(error)); \(name) stays unsynced: `alexandria audit` the "
                            + "publisher's releases before publishing with this key")
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
