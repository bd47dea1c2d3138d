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
    /// Segments of a file being pulled through read and verified at once (the oldest is sent while the others are
    /// read), each of chunks that have reached the store.
    public var pullSegmentsInFlight = 4
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
        let segments = Self.segments(of: recipe, chunks: indices, bytes: settings.segmentBytes)
        let readers = self.readers
        var ahead: [(segment: Int, read: Task<ByteBuffer, Error>)] = []
        defer { for task in ahead { task.read.cancel() } }
        do {
            var run = try store.locate(recipe, chunks: indices)
            var next = 0
            var relocations = 0
            func fill(upTo count: Int) {
                let current = run
                while next < segments.count && ahead.count < count {
                    let chunks = segments[next]
                    ahead.append((next, Task { try await readers.read(current, chunks: chunks, range: range) }))
                    next += 1
                }
            }
            fill(upTo: 1)
            while !ahead.isEmpty {
                let (segment, read) = ahead.removeFirst()
                let buffer: ByteBuffer
                do { buffer = try await read.value } catch let error as StoreError
                    where Self.packMoved(error) && relocations < Self.maxRelocations
                {
                    // The pack was rewritten (idle compression, GC) between the lookup and the read: nothing of it
                    // was sent. Look the chunks up again and read again from this segment on.
                    relocations += 1
                    for task in ahead { task.read.cancel() }
                    ahead.removeAll()
                    run = try store.locate(recipe, chunks: indices)
                    next = segment
                    fill(upTo: 1)
                    continue
                }
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

    /// Times a response looks its chunks up again after a pack moved under it, before it is cut off.
    static let maxRelocations = 4

    /// A read that failed because its pack is no longer where the lookup said (rewritten and deleted), not because
    /// a chunk is damaged: looking the chunks up again finds where they are now.
    static func packMoved(_ error: StoreError) -> Bool {
        error.code == .unreadablePath || error.code == .io
    }

    /// Chunk ranges of at least `bytes` (at least one chunk each).
    static func segments(of recipe: FileRecipe, chunks indices: Range<Int>, bytes: Int) -> [Range<Int>] {
        var segments: [Range<Int>] = []
        var i = indices.lowerBound
        while i < indices.upperBound {
            var j = i
            var total: UInt64 = 0
            while j < indices.upperBound && (j == i || total < UInt64(bytes)) {
                total += UInt64(recipe.chunks[j].length)
                j += 1
            }
            segments.append(i..<j)
            i = j
        }
        return segments
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

    /// Streams a range of a file being pulled through, in file order, as the fetch puts its chunks into the store.
    /// The fetch itself keeps many chunks in flight from every holder it knows (`Fetcher`: `window` requests of
    /// `batch` chunks per peer); here, each run of chunks that has reached the store is read back in segments of
    /// whole chunks on the reader threads, verified against their ids, with up to `pullSegmentsInFlight` segments
    /// being read while the oldest is sent. Memory stays bounded by those segments and the write buffer whatever the
    /// client's speed (the store, not this response, holds what the fetch ran ahead with). If the fetch fails with a
    /// chunk still missing, or a chunk fails its hash, the connection is cut.
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
        let indices = recipe.chunkIndices(covering: range)
        let readers = self.readers
        let segmentBytes = UInt64(settings.segmentBytes)
        let inFlight = max(1, settings.pullSegmentsInFlight)
        var next = indices.lowerBound  // the first chunk not yet handed to a reader
        var ahead: [Task<ByteBuffer, Error>] = []
        defer { for task in ahead { task.cancel() } }
        /// Hands the chunks from `next` on that the store now holds to the readers, a segment at a time.
        func fill() throws {
            while ahead.count < inFlight && next < indices.upperBound {
                let window = next..<min(indices.upperBound, next + Self.pullLookahead)
                let held = try store.holds(recipe.chunks[window].map(\.id))
                var end = next
                var bytes: UInt64 = 0
                while end < window.upperBound && held.contains(recipe.chunks[end].id)
                    && (end == next || bytes < segmentBytes)
                {
                    bytes += UInt64(recipe.chunks[end].length)
                    end += 1
                }
                guard end > next else { return }
                let run = try store.locate(recipe, chunks: next..<end)
                ahead.append(Task { try await readers.read(run, chunks: run.indices, range: range) })
                next = end
            }
        }
        while true {
            try fill()
            if !ahead.isEmpty {
                let buffer = try await ahead.removeFirst().value
                try fill()
                try await outbound.write(.body(.byteBuffer(buffer)))
                continue
            }
            if next >= indices.upperBound { return }
            // The next chunk has not reached the store yet.
            if job.state().finished, try store.holds([recipe.chunks[next].id]).isEmpty {
                throw GatewayError(.badGateway, "PullFailed", "the fetch of \(job.file.sha256) stopped")
            }
            try await Task.sleep(nanoseconds: 2_000_000)
        }
    }

    /// Chunks looked up at once when a pull-through looks for what has reached the store.
    static let pullLookahead = 64
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
