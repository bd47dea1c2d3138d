import AlexandriaCatalog
import AlexandriaCore
import AlexandriaManifest
import AlexandriaMetrics
import AlexandriaStore
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// Named limits and settings of the HTTP gateway.
public struct GatewaySettings: Sendable {
    public var host = "127.0.0.1"
    public var port = 0
    /// Connections served at once; one more is answered `503` and closed.
    public var maxConnections = 256
    /// Seconds a new connection has to deliver a complete request head (slowloris).
    public var headerTimeoutSeconds: Int64 = 10
    /// Seconds a keep-alive connection may sit between requests, and a response may go without a completed write
    /// (a client that stopped reading).
    public var idleTimeoutSeconds: Int64 = 60
    /// Longest request target, bytes (`414` beyond).
    public var maxURIBytes = 8 << 10
    /// Most bytes of one header field (the request target counts as one for the decoder, so this is above
    /// `maxURIBytes`, which is checked first), and of all header fields together (`431` beyond).
    public var maxHeaderFieldBytes = 12 << 10
    public var maxHeaderBytes = 16 << 10
    /// Most raw bytes before a request head is complete, request line included (`414`/`431` beyond).
    public var maxHeadBytes = 32 << 10
    /// Bytes read and verified per write when streaming a file: whole chunks, at least one. Bounds the memory a
    /// download holds (about two of these per connection, whatever the client's speed).
    public var segmentBytes = 1 << 20
    /// Segments read and verified ahead of the one being sent (besides it), so reading overlaps sending.
    public var readAheadSegments = 1
    /// The connection's write buffer: writes wait while more than `high` bytes are queued, until below `low`.
    public var writeBufferLowBytes = 1 << 20
    public var writeBufferHighBytes = 2 << 20
    /// Threads that read and verify segments for all connections (0: one per core).
    public var readerThreads = 0
    /// Operator aliases for publishers in Hugging Face repository names (`[gateway.aliases]`).
    public var aliases: [String: PublisherID] = [:]

    public init() {}
}

/// The read-only HTTP gateway of a node: a `Service` that answers GET and HEAD from the node's store and catalog
/// through a table of route sets (Protocol/gateway-v1.md). Built on NIOHTTP1: one child task per connection, whose
/// errors never reach the server; body writes suspend while the socket is not writable, so a slow reader holds at
/// most about two segments in memory.
public final class Gateway: Service, @unchecked Sendable {
    public let store: ContentStore
    public let catalog: Catalog
    public let settings: GatewaySettings
    let logger: Logger
    /// The route sets, asked in order. Add sets (e.g. `/metrics`) before `run()`.
    public var routes: [any GatewayRoutes]
    /// Set once bound: the actual port.
    public private(set) var boundPort: Int?
    private let ready: AsyncStream<Int>.Continuation
    public let readiness: AsyncStream<Int>
    private let active = ActiveCount()
    public let pullThrough: PullThrough?
    let readers: SegmentReaders

    /// `pullThrough`: how files this node does not hold are fetched from peers while they stream; nil to answer
    /// `503` for them instead.
    public init(
        store: ContentStore, catalog: Catalog, settings: GatewaySettings, pullThrough: PullThrough? = nil,
        logger: Logger
    ) {
        self.store = store
        self.catalog = catalog
        self.settings = settings
        self.logger = logger
        self.pullThrough = pullThrough
        readers = SegmentReaders(
            store: store,
            threads: settings.readerThreads > 0 ? settings.readerThreads : ProcessInfo.processInfo.activeProcessorCount)
        let resolver = ReleaseResolver(store: store, catalog: catalog, aliases: settings.aliases)
        routes = [
            HashRoutes(store: store, catalog: catalog, pullThrough: pullThrough),
            HubRoutes(resolver: resolver, pullThrough: pullThrough),
            OCIRoutes(resolver: resolver, pullThrough: pullThrough),
        ]
        (readiness, ready) = AsyncStream<Int>.makeStream()
    }

    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    /// A connection as the accept loop gets it: counted against the cap and set up for HTTP, or refused (its
    /// `RefuseHandler` answers it).
    enum Accepted: Sendable {
        case serve(Connection)
        case refused
    }

    public func run() async throws {
        let settings = self.settings
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 512)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(
                .writeBufferWaterMark,
                value: .init(low: settings.writeBufferLowBytes, high: settings.writeBufferHighBytes)
            )
            .bind(host: settings.host, port: settings.port) { channel in
                channel.eventLoop.makeCompletedFuture { () throws -> Accepted in
                    // Beyond the cap: a raw 503 from a handler of its own, before any HTTP state exists (an HTTP
                    // response written on a connection that sent no request yet would break the HTTP pipeline).
                    guard self.active.enter(limit: settings.maxConnections) else {
                        try channel.pipeline.syncOperations.addHandler(RefuseHandler())
                        return .refused
                    }
                    let state = ConnectionState()
                    var limits = NIOHTTPDecoderLimitConfiguration()
                    limits.maxHeaderFieldSize = settings.maxHeaderFieldBytes
                    limits.maxHeaderListSize = settings.maxHeaderBytes
                    limits.maxHeaderFieldCount = 256
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(
                        HeadSizeGuard(
                            state: state, maxHeadBytes: settings.maxHeadBytes, maxURIBytes: settings.maxURIBytes))
                    try sync.addHandler(HTTPResponseEncoder())
                    try sync.addHandler(
                        ByteToMessageHandler(
                            HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes, limitConfiguration: limits)))
                    try sync.addHandler(
                        RequestLimitsHandler(
                            state: state, headerTimeout: .seconds(settings.headerTimeoutSeconds),
                            idleTimeout: .seconds(settings.idleTimeoutSeconds), maxURIBytes: settings.maxURIBytes))
                    try sync.addHandler(HTTPServerPipelineHandler())
                    try sync.addHandler(IdleStateHandler(writeTimeout: .seconds(settings.idleTimeoutSeconds)))
                    try sync.addHandler(StallCloser())
                    return .serve(try Connection(wrappingChannelSynchronously: channel))
                }
            }
        boundPort = server.channel.localAddress?.port
        logger.info("gateway listening", metadata: ["http.port": "\(boundPort ?? -1)"])
        ready.yield(boundPort ?? settings.port)
        ready.finish()
        readers.start()
        defer { Task { await self.readers.shutdown() } }
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { inbound in
                    for try await accepted in inbound {
                        guard case .serve(let connection) = accepted else { continue }
                        group.addTask {
                            await self.serve(connection)
                            self.active.leave()
                        }
                    }
                }
            }
        } onGracefulShutdown: {
            server.channel.close(promise: nil)
        }
    }

    func serve(_ connection: Connection) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var pending: HTTPRequestHead?
                for try await part in inbound {
                    switch part {
                    case .head(let head): pending = head
                    case .body: continue  // GET and HEAD bodies mean nothing here; they are read and dropped.
                    case .end:
                        guard let head = pending else { continue }
                        pending = nil
                        let started = ContinuousClock.now
                        let (response, route) = await self.response(to: head)
                        let keepAlive = head.isKeepAlive && response.status != .serviceUnavailable
                        try await self.write(response, for: head, keepAlive: keepAlive, to: outbound)
                        NodeMetrics.httpRequest(
                            route: route, status: Int(response.status.code), duration: ContinuousClock.now - started)
                        if !keepAlive {
                            // `executeThenClose` closes the channel at once when this closure returns, which drops
                            // whatever of the body is still in the channel's write buffer (up to its high-water mark):
                            // the client would see a short read (found with skopeo, which sends `Connection: close`).
                            // Closing the output first completes only once every pending write went out.
                            try await connection.channel.close(mode: .output).get()
                            return
                        }
                    }
                }
            }
        } catch {
            logger.debug("http connection ended", metadata: ["error": "\(error)"])
        }
    }

    /// Routes a request; never throws (errors become their responses, unknown ones a bare `500`). Also returns the
    /// name of the route set that answered (`none` if none did or the request was refused before routing), for the
    /// latency histogram.
    func response(to head: HTTPRequestHead) async -> (GatewayResponse, route: String) {
        guard head.method == .GET || head.method == .HEAD else {
            var e = GatewayError(.methodNotAllowed, "MethodNotAllowed", "this gateway is read-only: GET and HEAD only")
            e.headers.add(name: "Allow", value: "GET, HEAD")
            return (e.response, "none")
        }
        guard head.uri.utf8.count <= settings.maxURIBytes else {
            let e = GatewayError(
                .uriTooLong, "URITooLong", "the request target is longer than \(settings.maxURIBytes) bytes")
            return (e.response, "none")
        }
        guard let target = RequestTarget(head.uri) else {
            let e = GatewayError(.badRequest, "BadPath", "the path is not a valid, normalised request target")
            return (e.response, "none")
        }
        let request = GatewayRequest(method: head.method, uri: head.uri, target: target, headers: head.headers)
        var route = "none"
        do {
            for set in routes {
                route = set.metricsName
                if let r = try await set.respond(to: request) { return (r, route) }
            }
            return (GatewayError(.notFound, "NotFound", "no such endpoint").response, "none")
        } catch let e as GatewayError {
            return (e.response, route)
        } catch {
            logger.warning("request failed", metadata: ["http.uri": "\(head.uri)", "error": "\(error)"])
            let e = GatewayError(.internalServerError, "InternalError", "the request failed on this node")
            return (e.response, route)
        }
    }

    /// Writes a response. A file body is read in segments of whole chunks; each segment is verified (every chunk
    /// against its id) before any of its bytes are written. If a chunk fails, the error propagates and the
    /// connection is closed with the body incomplete: the client sees a short read, never wrong bytes.
    func write(
        _ response: GatewayResponse, for request: HTTPRequestHead, keepAlive: Bool,
        to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    ) async throws {
        var headers = response.headers
        headers.replaceOrAdd(name: "Content-Length", value: "\(response.contentLength)")
        headers.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers)))
        if request.method != .HEAD {
            switch response.body {
            case .empty: break
            case .bytes(let bytes): try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: bytes))))
            case .file(let recipe, let range): try await stream(recipe, range: range, to: outbound)
            case .pull(let job, let range): try await stream(job, range: range, to: outbound)
            }
        }
        try await outbound.write(.end(nil))
        switch response.body {
        case .file, .pull:
            if request.method != .HEAD { NodeMetrics.served(bytes: Int(response.contentLength), via: .http) }
        case .empty, .bytes: break
        }
    }

    /// Streams `range` of a stored file in segments of whole chunks. Segments are read and verified on the
    /// reader threads up to `readAheadSegments` ahead of the one being sent, so reading overlaps sending; each is
    /// written only once every chunk in it matched its id. Memory per response is bounded by the read-ahead and the
    /// channel's write-buffer high-water mark, whatever the client's speed. A chunk that fails (damaged or gone)
    /// ends the response short of its length and starts its repair from peers.
    func stream(
        _ recipe: FileRecipe, range: Range<UInt64>, to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    ) async throws {
        let indices = recipe.chunkIndices(covering: range)
        guard !indices.isEmpty else { return }
        var segments: [Range<Int>] = []
        var i = indices.lowerBound
        while i < indices.upperBound {
            var j = i
            var bytes: UInt64 = 0
            while j < indices.upperBound && (j == i || bytes < UInt64(settings.segmentBytes)) {
                bytes += UInt64(recipe.chunks[j].length)
                j += 1
            }
            segments.append(i..<j)
            i = j
        }
        let readers = self.readers
        var ahead: [Task<ByteBuffer, Error>] = []
        defer { for task in ahead { task.cancel() } }
        do {
            let run = try store.locate(recipe, chunks: indices)
            var next = 0
            func fill(upTo count: Int) {
                while next < segments.count && ahead.count < count {
                    let chunks = segments[next]
                    ahead.append(Task { try await readers.read(run, chunks: chunks, range: range) })
                    next += 1
                }
            }
            fill(upTo: 1)
            while !ahead.isEmpty {
                let buffer = try await ahead.removeFirst().value
                // The next segments are read while this one is written and drains.
                fill(upTo: max(1, settings.readAheadSegments))
                try await outbound.write(.body(.byteBuffer(buffer)))
            }
        } catch let error as StoreError {
            logger.warning(
                "cutting off a response: a chunk failed verification or is missing; repairing it from peers",
                metadata: ["file.address": "\(recipe.address)", "error": "\(error)"])
            await repair(recipe.address)
            throw error
        }
    }

    /// Fetches the damaged or missing chunks of a stored file again from the peers that hold its release (the
    /// fetch copies the intact chunks from the store and asks peers only for the others), so the next request is
    /// served whole. Does nothing without pull-through or a known release.
    func repair(_ address: ContentHash) async {
        guard let pullThrough,
            let manifestID = try? catalog.manifests(containing: address).first,
            let manifest = try? catalog.manifest(id: manifestID),
            let file = manifest.manifest.files.first(where: { $0.sha256 == address })
        else { return }
        _ = await pullThrough.pull(file, of: manifestID)
    }
}

extension Gateway {
    /// Most seconds to wait for a pull-through's chunk list (the peers' first answer) before giving up.
    static let pullStartSeconds = 60.0

    /// Streams a range of a file being pulled through: each chunk, in file order, as soon as the fetch has put it
    /// into the store; every chunk is read back verified (`ContentStore.chunk`) before it is written. If the fetch
    /// fails with a chunk still missing, the connection is cut.
    func stream(
        _ job: PullJob, range: Range<UInt64>, to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    ) async throws {
        let started = Date()
        var settled: FileRecipe?
        while settled == nil {
            let state = job.state()
            settled = state.recipe
            if settled != nil { break }
            if state.finished || Date().timeIntervalSince(started) > Self.pullStartSeconds {
                throw GatewayError(.badGateway, "PullFailed", "no peer delivered \(job.file.sha256)")
            }
            try await Task.sleep(nanoseconds: 5_000_000)
        }
        guard let recipe = settled, recipe.address == job.file.sha256, recipe.size == job.file.size else {
            throw GatewayError(.badGateway, "PullFailed", "the chunk list does not describe \(job.file.sha256)")
        }
        for i in recipe.chunkIndices(covering: range) {
            let chunk = recipe.chunks[i]
            while try store.holds([chunk.id]).isEmpty {
                if job.state().finished, try store.holds([chunk.id]).isEmpty {
                    throw GatewayError(.badGateway, "PullFailed", "the fetch of \(job.file.sha256) stopped")
                }
                try await Task.sleep(nanoseconds: 2_000_000)
            }
            let bytes = try store.chunk(chunk.id)
            let from = Int(max(range.lowerBound, chunk.offset) - chunk.offset)
            let to = Int(min(range.upperBound, chunk.end) - chunk.offset)
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: bytes[from..<to]))))
        }
    }
}

/// Connections being served, against the cap.
final class ActiveCount: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0

    func enter(limit: Int) -> Bool {
        lock.withLock {
            guard count < limit else { return false }
            count += 1
            return true
        }
    }

    func leave() { lock.withLock { count -= 1 } }
}
