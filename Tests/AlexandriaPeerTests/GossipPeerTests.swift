import AlexandriaCatalog
import AlexandriaCore
import AlexandriaGossip
import AlexandriaManifest
import AlexandriaPeer
import AlexandriaStore
import AlexandriaWire
import Crypto
import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing

/// Connects to a node as another node (listen port non-zero, so gossip applies) and runs `body` on the session.
func asGossipPeer<T: Sendable>(
    port: Int, _ body: @escaping @Sendable (inout PeerSession) async throws -> T
) async throws -> T {
    let me = NodeIdentity(key: Curve25519.Signing.PrivateKey())
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: "127.0.0.1", port: port) { PeerSession.pipeline($0) }
    return try await channel.executeThenClose { inbound, outbound in
        try await PeerSession.handshake(
            identity: me, initiator: true, listenPort: 40_999, channel: channel.channel, inbound: inbound,
            outbound: outbound, body: body)
    }
}

@Suite("Gossip from honest and hostile peers", .serialized)
struct GossipPeerTests {
    func gossipingNode() throws -> ServingNode {
        let node = try ServingNode(data: testBytes(1000, seed: 9))
        var settings = GossipSettings()
        settings.antiEntropySeconds = 3600
        node.server.gossip = GossipNode(
            catalog: node.server.catalog, identity: node.server.identity, bootstrap: [], settings: settings,
            logger: Logger(label: "test.gossip"))
        return node
    }

    @Test func validItemsAreStoredAndInvalidOnesCostThePeerItsConnection() async throws {
        let node = try gossipingNode()
        let port = try await node.start()
        // An honest peer pushes a publisher key: stored.
        let key = PublisherKey.generate()
        let keyItem = CatalogItem(kind: .publisherKey, body: Array(key.publicKey.derRepresentation))
        try await asGossipPeer(port: port) { session in
            try await session.send(.items(path: [], items: [keyItem]))
            try await session.send(.ping(1))
            while let m = try await session.next() { if case .pong = m { break } }
        }
        #expect(try node.server.catalog.hasItem(keyItem.id))
        // A hostile one pushes forged log entries (signed by a stranger for that publisher): after a few, it is cut
        // off, and none of them is stored.
        let stranger = PublisherKey.generate()
        let forged = try (0..<10).map { i in
            CatalogItem(
                kind: .logEntry,
                body: try SignedLogEntry.sign(
                    try LogEntry(
                        publisher: key.id, index: 0, kind: .publish, release: "x@\(i)",
                        manifest: ContentHash.of([UInt8(i)])),
                    key: stranger
                ).envelope.json)
        }
        let cutOff = try await asGossipPeer(port: port) { session -> Bool in
            for item in forged { try? await session.send(.items(path: [], items: [item])) }
            try? await session.send(.ping(2))
            while let m = try? await session.next() {
                if case .pong = m { return false }
            }
            return true
        }
        #expect(cutOff)
        for item in forged { #expect(try !node.server.catalog.hasItem(item.id)) }
    }

    @Test func aClientThatIsNotANodeGetsNoGossip() async throws {
        let node = try gossipingNode()
        let port = try await node.start()
        let me = NodeIdentity(key: Curve25519.Signing.PrivateKey())
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { PeerSession.pipeline($0) }
        let refused = try await channel.executeThenClose { inbound, outbound in
            try await PeerSession.handshake(
                identity: me, initiator: true, listenPort: 0, channel: channel.channel, inbound: inbound,
                outbound: outbound
            ) { session -> Bool in
                try await session.send(.peersQuery)
                while let m = try? await session.next() {
                    if case .error(.protocolViolation, _) = m { return true }
                    if case .peers = m { return false }
                }
                return true
            }
        }
        #expect(refused)
    }

    @Test func reconciliationSendsWhatThePeerLacks() async throws {
        let node = try gossipingNode()
        let key = PublisherKey.generate()
        try node.server.catalog.register(publisherKey: key.publicKey)
        let port = try await node.start()
        // A peer with an empty set opens an exchange: the node answers with the id list, the peer WANTs it, gets it.
        let got = try await asGossipPeer(port: port) { session -> [CatalogItem] in
            try await session.send(.reconcile(round: 0, ranges: Reconciler.open([])))
            while let m = try await session.next() {
                switch m {
                case .reconcile(let round, let ranges):
                    let step = try Reconciler.step([], message: ranges)
                    if !step.weLack.isEmpty { try await session.send(.want(step.weLack)) }
                    if let reply = step.reply { try await session.send(.reconcile(round: round + 1, ranges: reply)) }
                case .items(_, let items): return items
                default: continue
                }
            }
            return []
        }
        #expect(got.map(\.id) == [CatalogItem(kind: .publisherKey, body: Array(key.publicKey.derRepresentation)).id])
    }
}
