import AlexandriaCatalog
import AlexandriaCore
import AlexandriaGossip
import AlexandriaManifest
import AlexandriaMetrics
import AlexandriaStore
import AlexandriaWire
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The serving side of a node: accepts connections, authenticates them, and answers requests from the store and
/// the catalog. One child task per connection; a failing connection never takes the server down.
public final class PeerServer: Service, @unchecked Sendable {
    public let store: ContentStore
    public let catalog: Catalog
    public let identity: NodeIdentity
    public let host: String
    public let port: Int
    let logger: Logger
    /// Set once bound: the actual port (useful with port 0).
    public private(set) var boundPort: Int?
    private let ready: AsyncStream<Int>.Continuation
    public let readiness: AsyncStream<Int>

    /// Requests one connection may make per second (burst twice that) before it counts as a flood.
    public static let maxRequestsPerSecond = 2000.0
    /// Upload limit in bytes per second for all connections together; nil for none (`node run --upload-rate`).
    nonisolated(unsafe) public var uploadBytesPerSecond: Double?
    private let uploadLimiter = RateLimiter()
    /// The gossip half of the node (nil for a plain server, as in fetch tests).
    nonisolated(unsafe) public var gossip: GossipNode?
    /// Plain clients kept at once, in all and per address (`[node] clients`, `clients_per_address`). Set before
    /// `run`.
    nonisolated(unsafe) public var clientLimits = ClientAdmission.Limits()
    /// Closes a connection that has received no complete frame for this long: wire v1's `idleTimeout`, shorter
    /// only in tests (`[test] idle_timeout`).
    nonisolated(unsafe) public var idleTimeoutSeconds = Double(WireLimits.idleTimeoutSeconds)
    var idleTimeout: TimeAmount { .milliseconds(Int64(idleTimeoutSeconds * 1000)) }
    /// Made from `clientLimits` when `run` starts, before the first connection.
    nonisolated(unsafe) private var clients = ClientGate(limits: .init())
    /// Outbound dials asked for by gossip, run by `run`'s task group.
    private let dials = AsyncStream<(PeerAddress, Int)>.makeStream()
    /// The bound port for the gossip service, once known.
    private let listening = OnceValue<Int?>()

    public init(store: ContentStore, catalog: Catalog, identity: NodeIdentity, host: String, port: Int, logger: Logger)
    {
        self.store = store
        self.catalog = catalog
        self.identity = identity
        self.host = host
        self.port = port
        self.logger = logger
        (readiness, ready) = AsyncStream<Int>.makeStream()
    }

    public func run() async throws {
        try await NodeExecutor.shared.run { try await listen() }
    }

    /// Binds, then runs three parts in one task group until the listener closes: the accept loop (one child task
    /// per connection, whose errors never reach the server), the outbound dials gossip asks for (`requestDial`), and
    /// the graceful-shutdown watcher, which closes the listener and the plain clients. Gossip links are closed by
    /// the gossip service (`GossipService`), which the `ServiceGroup` shuts down before the server.
    func listen() async throws {
        clients = ClientGate(limits: clientLimits)
        let server: NIOAsyncChannel<NIOAsyncChannel<WireMessage, WireMessage>, Never>
        do {
            server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .bind(host: host, port: port) { [idleTimeout] channel in
                    PeerSession.pipeline(channel, idleTimeout: idleTimeout)
                }
        } catch {
            ready.finish()
            listening.set(nil)
            throw PeerError.listen(host: host, port: port, error)
        }
        boundPort = server.channel.localAddress?.port
        logger.info("listening", metadata: ["node.id": "\(identity.id)", "listen.port": "\(boundPort ?? -1)"])
        ready.yield(boundPort ?? port)
        ready.finish()
        listening.set(boundPort ?? port)
        let clients = self.clients
        let dials = self.dials
        try await withThrowingTaskGroup(of: Void.self) { helpers in
            helpers.addTask {
                // Returns on graceful shutdown; throws when the server is cancelled instead (then nothing to do).
                do { try await gracefulShutdown() } catch { return }
                self.logger.info("shutting down: no new connections")
                server.channel.close(promise: nil)
                await clients.closeAll()
                // Normally done already by the gossip service, which shuts down first; idempotent.
                await self.gossip?.stop()
            }
            helpers.addTask {
                await withDiscardingTaskGroup { group in
                    for await (address, listenPort) in dials.stream {
                        group.addTask { await self.dial(address, listenPort: listenPort) }
                    }
                }
            }
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask { await self.serve(connection) }
                    }
                }
            }
            // The listener is closed and every connection has ended: the watcher and the dials go too.
            dials.continuation.finish()
            helpers.cancelAll()
        }
        logger.info("stopped")
    }

    /// Asks the server to dial `address` (gossip's outbound connections); the dial runs as a child task of `run`
    /// and ends with it. Ignored once the server has stopped.
    func requestDial(_ address: PeerAddress, listenPort: Int) {
        dials.continuation.yield((address, listenPort))
    }

    /// The port the server listens on, once it does; nil if binding failed.
    func listeningPort() async -> Int? { await listening.value() }

    func serve(_ connection: NIOAsyncChannel<WireMessage, WireMessage>) async {
        let remote = connection.channel.remoteAddress?.description ?? "?"
        do {
            // A peer that has not authenticated within the handshake timeout is cut off (the machine's timer).
            let channel = connection.channel
            try await connection.executeThenClose { inbound, outbound in
                try await PeerSession.handshake(
                    identity: self.identity, initiator: false, listenPort: UInt16(self.boundPort ?? 0),
                    channel: channel, inbound: inbound, outbound: outbound
                ) { session in
                    let host = channel.remoteAddress?.ipAddress
                    let listen =
                        session.peerListenPort == 0
                        ? nil
                        : host.map {
                            PeerAddress(host: $0, port: Int(session.peerListenPort))
                        }
                    try await self.run(
                        &session, channel: channel, initiatedBySelf: false, listen: listen, remote: remote)
                }
            }
        } catch {
            logger.debug("connection ended", metadata: ["peer.address": "\(remote)", "error": "\(error)"])
        }
    }

    /// Runs an authenticated connection: a node (one that listens) joins gossip; a plain client (a fetch) only makes
    /// requests.
    func run(
        _ session: inout PeerSession, channel: Channel, initiatedBySelf: Bool, listen: PeerAddress?, remote: String
    ) async throws {
        guard let gossip, let listen else {
            // A plain client: admitted within the client limits, or told the node is overloaded.
            switch await clients.admit(address: channel.remoteAddress?.ipAddress ?? remote, channel: channel) {
            case .failure(let refusal):
                logger.debug("client refused", metadata: ["peer.address": "\(remote)", "reason": "\(refusal)"])
                try? await session.send(.error(.overloaded, refusal.message))
            case .success(let ticket):
                do { try await serveRequests(&session, channel: channel, remote: remote, link: nil) } catch {
                    await clients.release(ticket)
                    throw error
                }
                await clients.release(ticket)
            }
            return
        }
        guard
            let link = await gossip.register(
                key: session.peerKey, initiatedBySelf: initiatedBySelf, listenAddress: listen, channel: channel)
        else {
            // Inbound slots full, a duplicate of a live link, or a banned key.
            try? await session.send(.error(.overloaded, "this node takes no further link from you now"))
            channel.close(promise: nil)
            return
        }
        let writer = session.outbound
        // What gossip queues for this link is written by a child task; the link's end (either way) ends it.
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await message in link.stream { try await writer.write(message) }
            }
            do { try await serveRequests(&session, channel: channel, remote: remote, link: link) } catch {
                await gossip.unregister(link)
                group.cancelAll()
                throw error
            }
            await gossip.unregister(link)
            group.cancelAll()
        }
    }

    /// Opens an outbound connection to a node and runs it until it ends.
    func dial(_ address: PeerAddress, listenPort: Int) async {
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .connectTimeout(.seconds(3))
                .connect(host: address.host, port: address.port) { [idleTimeout] channel in
                    PeerSession.pipeline(channel, idleTimeout: idleTimeout)
                }
            let raw = channel.channel
            try await channel.executeThenClose { inbound, outbound in
                try await PeerSession.handshake(
                    identity: identity, initiator: true, listenPort: UInt16(listenPort), channel: raw,
                    inbound: inbound, outbound: outbound
                ) { session in
                    try await self.run(
                        &session, channel: raw, initiatedBySelf: true, listen: address, remote: address.description)
                }
            }
        } catch {
            logger.debug(
                "dial failed",
                metadata: ["peer.address": "\(address)", "error": "\(PeerError.reason("\(address)", error))"])
            await gossip?.dialFailed(address)
        }
    }

    func serveRequests(_ session: inout PeerSession, channel: Channel, remote: String, link: Link?) async throws {
        /// A fatal error goes to the connection guard, which sends ERROR as the last frame, after whatever is
        /// already queued, and closes once it is written (Protocol/wire-v1.md: ERROR, then close).
        func fatal(_ error: WireError) -> WireError {
            channel.pipeline.fireErrorCaught(error)
            return error
        }
        var log = logger
        log[metadataKey: "peer.id"] = "\(session.peerID)"
        log.debug("peer authenticated", metadata: ["peer.address": "\(remote)"])
        let context = ServeContext()
        var bucket = TokenBucket(rate: Self.maxRequestsPerSecond, burst: 2 * Self.maxRequestsPerSecond)
        while let message = try await session.next() {
            guard bucket.take() else {
                log.warning("peer flooded requests; disconnecting")
                throw fatal(WireError(.overloaded, "too many requests; slow down"))
            }
            let started = ContinuousClock.now
            defer {
                if let type = Self.requestType(of: message) {
                    NodeMetrics.peerRequest(type: type, duration: ContinuousClock.now - started)
                }
            }
            switch message {
            case .ping(let token):
                try await session.send(.pong(token))
            case .haveQuery(let addresses):
                var items: [(ContentHash, Availability)] = []
                for address in addresses {
                    if let a = try store.availability(of: address) {
                        items.append(
                            (address, a.complete ? .complete : .partial(chunkCount: a.chunkCount, bits: a.bits)))
                    } else {
                        items.append((address, .none))
                    }
                }
                try await session.send(.have(items))
            case .getRecipe(let address, let start, let maxCount):
                guard let recipe = try store.recipe(of: address), Int(start) <= recipe.chunks.count else {
                    try await session.send(.error(.notFound, "no file \(address) here"))
                    continue
                }
                let end = min(recipe.chunks.count, Int(start) + Int(maxCount))
                if start == 0 {
                    // Demand: a fetch of this file is a fetch of the releases that contain it.
                    for m in (try? catalog.manifests(containing: address)) ?? [] { try? catalog.countDemand(m) }
                }
                try await session.send(
                    .recipe(
                        address: address, size: recipe.size, averageBits: UInt8(recipe.chunker.averageBits),
                        total: UInt32(recipe.chunks.count), start: start,
                        entries: recipe.chunks[Int(start)..<end].map { ($0.id, $0.length) }))
            case .getChunks(let requestID, let ids):
                for (i, id) in ids.enumerated() {
                    if let served = try store.chunkForServing(id, context: context),
                        served.payload.count + 64 <= WireLimits.maxFrameBytes
                    {
                        if let rate = uploadBytesPerSecond {
                            await uploadLimiter.wait(bytes: served.payload.count, rate: rate)
                        }
                        try await session.send(
                            .chunk(
                                requestID: requestID, index: UInt16(i), id: id, codec: served.codec,
                                rawLength: UInt32(served.rawLength), payload: served.payload))
                        NodeMetrics.served(bytes: served.payload.count, via: .peer)
                    } else {
                        try await session.send(.chunkMissing(requestID: requestID, index: UInt16(i), id: id))
                    }
                }
            case .getManifestByID(let id):
                try await sendManifest(session, id: id)
            case .getManifestByRelease(let text):
                let resolved = try? Registry(store: store, catalog: catalog).resolve(try Reference(parsing: text))
                try await sendManifest(session, id: resolved?.manifest.id)
            case .items, .reconcile, .want, .peersQuery, .peers:
                guard let link, let gossip else {
                    throw fatal(WireError(.protocolViolation, "gossip is only for nodes that listen"))
                }
                do { try await gossip.handle(message, from: link) } catch let error as WireError { throw fatal(error) }
            case .error(let code, let text):
                log.debug("peer reported an error", metadata: ["error.code": "\(code)", "error.message": "\(text)"])
            default:
                throw fatal(WireError(.protocolViolation, "unexpected message type \(message.type)"))
            }
        }
    }

    /// The request types timed in `alexandria_peer_request_duration_seconds`; nil for gossip and notices.
    static func requestType(of message: WireMessage) -> String? {
        switch message {
        case .ping: "ping"
        case .haveQuery: "have_query"
        case .getRecipe: "get_recipe"
        case .getChunks: "get_chunks"
        case .getManifestByID, .getManifestByRelease: "get_manifest"
        default: nil
        }
    }

    func sendManifest(_ session: PeerSession, id: ContentHash?) async throws {
        guard let id, let signed = try catalog.manifest(id: id), let log = try catalog.log(signed.manifest.publisher),
            let key = try catalog.publisherKey(signed.manifest.publisher)
        else {
            try await session.send(.error(.notFound, "no such manifest here"))
            return
        }
        let note = try catalog.checkpoints(signed.manifest.publisher).last?.note.serialized ?? ""
        let entries = log.entries.map(\.envelope.json)
        guard entries.count <= WireLimits.maxLogEntriesPerMessage,
            signed.envelope.json.count + entries.reduce(0, { $0 + $1.count + 4 }) + 32 * 1024 < WireLimits.maxFrameBytes
        else {
            try await session.send(.error(.notFound, "the manifest and its log do not fit one wire v1 frame"))
            return
        }
        try await session.send(
            .manifest(
                envelope: signed.envelope.json, publisherKey: Array(key.derRepresentation),
                entries: entries, checkpoint: note))
    }
}

/// A shared byte-rate limit: callers wait until their bytes fit the rate.
actor RateLimiter {
    private var next = Date.distantPast

    func wait(bytes: Int, rate: Double) async {
        let now = Date()
        let start = max(now, next)
        next = start.addingTimeInterval(Double(bytes) / rate)
        let delay = start.timeIntervalSince(now)
        if delay > 0 { try? await Task.sleep(nanoseconds: UInt64(delay * 1e9)) }
    }
}

/// Requests per second, with a burst.
struct TokenBucket {
    let rate: Double
    let burst: Double
    var tokens: Double
    var last = Date()

    init(rate: Double, burst: Double) {
        self.rate = rate
        self.burst = burst
        tokens = burst
    }

    mutating func take() -> Bool {
        let now = Date()
        tokens = min(burst, tokens + now.timeIntervalSince(last) * rate)
        last = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
