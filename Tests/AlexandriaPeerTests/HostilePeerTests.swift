import AlexandriaCatalog
import AlexandriaCore
import AlexandriaPeer
import AlexandriaStore
import AlexandriaWire
import Crypto
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// A peer that speaks the handshake correctly and then misbehaves in one chosen way, at the raw frame level.
final class HostilePeer: @unchecked Sendable {
    enum Behavior: String, CaseIterable, Sendable {
        case wrongBytes, oversizedFrame, malformedMessage, claimsMissing, stalls
    }

    let store: ContentStore
    let behavior: Behavior
    let identity = NodeIdentity(key: Curve25519.Signing.PrivateKey())
    var channel: Channel?
    /// Connections accepted so far.
    let connections = Mutex(0)

    init(store: ContentStore, behavior: Behavior) {
        self.store = store
        self.behavior = behavior
    }

    func start() async throws -> Int {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        channel = server.channel
        let port = server.channel.localAddress!.port!
        // On the node's threads, like the honest node: tests running in parallel may hold the cooperative pool.
        Task(executorPreference: NodeExecutor.shared) {
            try? await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        self.connections.withLock { $0 += 1 }
                        group.addTask { try? await self.serve(connection) }
                    }
                }
            }
        }
        return port
    }

    func stop() { channel?.close(promise: nil) }

    static func frame(_ m: WireMessage) -> ByteBuffer {
        var b = ByteBuffer()
        let payload = m.encodedPayload
        b.writeInteger(UInt32(payload.count + 1))
        b.writeInteger(m.type)
        b.writeBytes(payload)
        return b
    }

    func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async throws {
        try await connection.executeThenClose { inbound, outbound in
            var buffer = ByteBuffer()
            var iterator = inbound.makeAsyncIterator()
            func next() async throws -> WireMessage? {
                while true {
                    if let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self),
                        buffer.readableBytes >= 4 + Int(length)
                    {
                        buffer.moveReaderIndex(forwardBy: 4)
                        let type: UInt8 = buffer.readInteger()!
                        return try WireMessage.decode(type: type, payload: buffer.readBytes(length: Int(length) - 1)!)
                    }
                    guard var more = try await iterator.next() else { return nil }
                    buffer.writeBuffer(&more)
                }
            }
            let hello = Handshake.hello(identity: identity, listenPort: 0)
            try await outbound.write(Self.frame(hello))
            guard case .hello(let a, let b, let key, let nonce, let port)? = try await next() else { return }
            let theirs = WireMessage.hello(minVersion: a, maxVersion: b, nodeKey: key, nonce: nonce, listenPort: port)
            try await outbound.write(
                Self.frame(
                    try Handshake.sign(
                        identity: identity, initiator: false, initiatorHello: theirs.encodedPayload,
                        responderHello: hello.encodedPayload)))
            _ = try await next()  // their AUTH
            while let message = try await next() {
                switch message {
                case .haveQuery(let addresses):
                    try await outbound.write(Self.frame(.have(addresses.map { ($0, .complete) })))
                case .getRecipe(let address, _, _):
                    let r = try store.recipe(of: address)!
                    try await outbound.write(
                        Self.frame(
                            .recipe(
                                address: address, size: r.size, averageBits: UInt8(r.chunker.averageBits),
                                total: UInt32(r.chunks.count), start: 0, entries: r.chunks.map { ($0.id, $0.length) })))
                case .getChunks(let rid, let ids):
                    switch behavior {
                    case .wrongBytes:
                        var bytes = try store.chunk(ids[0])
                        bytes[bytes.count / 2] ^= 0xff
                        try await outbound.write(
                            Self.frame(
                                .chunk(
                                    requestID: rid, index: 0, id: ids[0], codec: 0, rawLength: UInt32(bytes.count),
                                    payload: bytes)))
                    case .oversizedFrame:
                        var b = ByteBuffer()
                        b.writeInteger(UInt32(0x7fff_ffff))
                        b.writeInteger(UInt8(0x21))
                        b.writeBytes([UInt8](repeating: 0, count: 1000))
                        try await outbound.write(b)
                    case .malformedMessage:
                        var b = ByteBuffer()
                        b.writeInteger(UInt32(4))
                        b.writeInteger(UInt8(0x21))
                        b.writeBytes([1, 2, 3])
                        try await outbound.write(b)
                    case .claimsMissing:
                        try await outbound.write(Self.frame(.chunkMissing(requestID: rid, index: 0, id: ids[0])))
                    case .stalls:
                        try await Task.sleep(nanoseconds: 60_000_000_000)
                    }
                default: break
                }
            }
        }
    }
}

/// A store with one file, served by a real in-process node.
final class ServingNode: @unchecked Sendable {
    let directory: String
    let store: ContentStore
    let server: PeerServer
    var task: Task<Void, Error>?

    init(data: [UInt8]) throws {
        directory = FileManager.default.temporaryDirectory.path + "/alexandria-node-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try ContentStore.initialize(at: directory + "/store")
        store = try ContentStore(directory: directory + "/store")
        let file = directory + "/data.bin"
        try Data(data).write(to: URL(fileURLWithPath: file))
        _ = try store.add(path: file)
        server = PeerServer(
            store: store, catalog: try Catalog(path: directory + "/catalog.sqlite"),
            identity: NodeIdentity(key: Curve25519.Signing.PrivateKey()), host: "127.0.0.1", port: 0,
            logger: Logger(label: "test.node"))
    }

    func start() async throws -> Int {
        let server = self.server
        task = Task {
            // The node's services as `node run` has them: the server, and gossip beside it when set.
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await server.run() }
                if let gossip = server.gossip {
                    group.addTask { try await GossipService(node: gossip, server: server).run() }
                }
            }
        }
        for await port in server.readiness { return port }
        throw WireError(.internal, "the node did not start")
    }

    deinit {
        task?.cancel()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

func testBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = (seed &+ 1) &* 0x9E37_79B9_7F4A_7C15 | 1
    return (0..<count).map { _ in
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return UInt8(truncatingIfNeeded: (state &* 2_685_821_657_736_338_717) >> 56)
    }
}

@Suite("Fetching from honest and hostile peers over loopback", .serialized)
struct HostilePeerTests {
    @Test(arguments: HostilePeer.Behavior.allCases)
    func fetchCompletesFromTheHonestPeer(behavior: HostilePeer.Behavior) async throws {
        let data = testBytes(6 << 20, seed: 42)
        let honest = try ServingNode(data: data)
        // Slow the honest peer down so the hostile one is always given work to misbehave on.
        honest.server.uploadBytesPerSecond = 8_000_000
        let goodPort = try await honest.start()
        let hostile = HostilePeer(store: honest.store, behavior: behavior)
        let badPort = try await hostile.start()
        defer { hostile.stop() }
        let home = FileManager.default.temporaryDirectory.path + "/alexandria-fetcher-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: home) }
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        try ContentStore.initialize(at: home + "/store")
        let fetcher = Fetcher(
            store: try ContentStore(directory: home + "/store"),
            identity: NodeIdentity(key: Curve25519.Signing.PrivateKey()),
            logger: Logger(label: "test.fetch"))
        // Generous: the honest node runs in this test process, and other suites running in parallel can starve it.
        fetcher.stallSeconds = 8
        // Write once (the store links to the output), so hostile peers are tried against that path too.
        fetcher.copyIntoStore = false
        // Small requests, so the work is spread and the hostile peer is always given some.
        fetcher.batch = 2
        fetcher.window = 2
        let address = ContentHash.of(data)
        let output = home + "/out.bin"
        // The hostile peer is listed first, so it gets work before the honest one.
        let report = try await fetcher.fetch(
            address, to: output,
            peers: [PeerAddress(host: "127.0.0.1", port: badPort), PeerAddress(host: "127.0.0.1", port: goodPort)])
        #expect(FileManager.default.contents(atPath: output) == Data(data))
        #expect(report.droppedPeers.keys.contains("127.0.0.1:\(badPort)"), "\(report.droppedPeers) \(report.peers)")
        #expect(report.peers["127.0.0.1:\(badPort)", default: 0] == 0)
        #expect(!FileManager.default.fileExists(atPath: output + ".alexandria-partial"))
    }

    @Test func aPeerThatSentWrongBytesIsHeldBackInTheNextFetch() async throws {
        let data = testBytes(4 << 20, seed: 43)
        let honest = try ServingNode(data: data)
        honest.server.uploadBytesPerSecond = 8_000_000
        let goodPort = try await honest.start()
        let hostile = HostilePeer(store: honest.store, behavior: .wrongBytes)
        let badPort = try await hostile.start()
        defer { hostile.stop() }
        let home = FileManager.default.temporaryDirectory.path + "/alexandria-scores-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: home) }
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        let peers = [PeerAddress(host: "127.0.0.1", port: badPort), PeerAddress(host: "127.0.0.1", port: goodPort)]
        for round in 0..<2 {
            // A fresh store each time, so the second fetch downloads everything again; the scores file is shared.
            try ContentStore.initialize(at: home + "/store\(round)")
            let fetcher = Fetcher(
                store: try ContentStore(directory: home + "/store\(round)"),
                identity: NodeIdentity(key: Curve25519.Signing.PrivateKey()), logger: Logger(label: "test.fetch"))
            fetcher.stallSeconds = 8
            fetcher.batch = 2
            fetcher.window = 2
            fetcher.scores = PeerScores(path: home + "/peer-scores.tsv")
            let output = home + "/out\(round).bin"
            _ = try await fetcher.fetch(ContentHash.of(data), to: output, peers: peers)
            #expect(FileManager.default.contents(atPath: output) == Data(data))
            let scores = PeerScores(path: home + "/peer-scores.tsv")
            #expect(scores.score(of: "127.0.0.1:\(badPort)") < 0)
            #expect(scores.score(of: "127.0.0.1:\(goodPort)") > 0)
            if round == 0 { #expect(hostile.connections.withLock { $0 } >= 1) }
        }
        // The second fetch finished from the honest peer without ever connecting to the penalised one.
        #expect(hostile.connections.withLock { $0 } == 1)
    }

    @Test func aPeerThatNeverCompletesTheHandshakeCannotHoldTheFetch() async throws {
        // A listener that the kernel completes TCP connections for, but that never reads or writes.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        #expect(bound == 0)
        #expect(listen(fd, 16) == 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let silentPort = Int(UInt16(bigEndian: addr.sin_port))
        let data = testBytes(1 << 20, seed: 44)
        let honest = try ServingNode(data: data)
        let goodPort = try await honest.start()
        let home = FileManager.default.temporaryDirectory.path + "/alexandria-silent-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: home) }
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        try ContentStore.initialize(at: home + "/store")
        let fetcher = Fetcher(
            store: try ContentStore(directory: home + "/store"),
            identity: NodeIdentity(key: Curve25519.Signing.PrivateKey()), logger: Logger(label: "test.fetch"))
        fetcher.handshakeTimeoutSeconds = 1
        let silent = PeerAddress(host: "127.0.0.1", port: silentPort)
        // Alone, the silent peer makes the fetch fail after the handshake timeout, not hang.
        let started = Date()
        await #expect(throws: WireError.self) {
            _ = try await fetcher.fetch(ContentHash.of(data), to: home + "/alone.bin", peers: [silent])
        }
        #expect(Date().timeIntervalSince(started) < 10)
        // Beside an honest peer, the fetch completes and the silent one is dropped.
        let report = try await fetcher.fetch(
            ContentHash.of(data), to: home + "/out.bin",
            peers: [silent, PeerAddress(host: "127.0.0.1", port: goodPort)])
        #expect(FileManager.default.contents(atPath: home + "/out.bin") == Data(data))
        #expect(report.droppedPeers.keys.contains(silent.description), "\(report.droppedPeers)")
    }

    @Test func aFloodingClientIsCutOff() async throws {
        let node = try ServingNode(data: testBytes(1000, seed: 1))
        let port = try await node.start()
        let me = NodeIdentity(key: Curve25519.Signing.PrivateKey())
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { PeerSession.pipeline($0) }
        let gotOverloaded = try await channel.executeThenClose { inbound, outbound in
            try await PeerSession.handshake(
                identity: me, initiator: true, listenPort: 0, channel: channel.channel, inbound: inbound,
                outbound: outbound
            ) { session -> Bool in
                for i in 0..<20_000 { try? await session.send(.ping(UInt64(i))) }
                while let message = try? await session.next() {
                    if case .error(.overloaded, _) = message { return true }
                }
                return false
            }
        }
        #expect(gotOverloaded)
    }

    @Test func anUnauthenticatedPeerGetsNothing() async throws {
        let node = try ServingNode(data: testBytes(1000, seed: 2))
        let port = try await node.start()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { PeerSession.pipeline($0) }
        let answered = try await channel.executeThenClose { inbound, outbound -> Bool in
            var iterator = inbound.makeAsyncIterator()
            let me = NodeIdentity(key: Curve25519.Signing.PrivateKey())
            try await outbound.write(Handshake.hello(identity: me, listenPort: 0))
            _ = try await iterator.next()  // their HELLO
            _ = try await iterator.next()  // their AUTH
            // The node may close the connection as soon as it reads the bad AUTH: a write after that failing is
            // the expected outcome, not an error of the test.
            try? await outbound.write(.auth(signature: [UInt8](repeating: 7, count: 64)))
            try? await outbound.write(.haveQuery([ContentHash.empty]))
            while let message = try? await iterator.next() {
                if case .have = message { return true }
            }
            return false
        }
        #expect(!answered)
    }
}
