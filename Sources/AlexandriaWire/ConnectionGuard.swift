import NIOCore

/// What one connection has received and still owes, held against the connection rules of wire v1
/// (Protocol/wire-v1.md, "Requests and responses" and "Timeouts and keepalive"). No I/O and no clock of its own: the
/// caller passes the time, so every decision can be tested without a socket.
///
/// - **Idle timeout.** Only a *complete* frame counts as activity, so a peer that trickles a frame a byte at a time
///   is as idle as one that sends nothing.
/// - **Outstanding chunk ids.** Each GET_CHUNKS received adds its ids; each CHUNK or CHUNK_MISSING sent removes
///   one. The peer counts an id until it *receives* the answer, which is never before this side sent it, so an
///   honest peer within `maxOutstandingChunks` never crosses the limit here.
public struct ConnectionWatch: Sendable {
    public let idleTimeout: TimeAmount
    public let maxOutstandingChunks: Int
    /// When the last complete frame arrived (the connection's start before the first).
    public private(set) var lastFrame: NIODeadline
    /// Chunk ids received in GET_CHUNKS and not yet answered by a CHUNK or CHUNK_MISSING sent.
    public private(set) var outstandingChunks = 0

    public init(
        idleTimeout: TimeAmount, maxOutstandingChunks: Int = WireLimits.maxOutstandingChunks, now: NIODeadline
    ) {
        self.idleTimeout = idleTimeout
        self.maxOutstandingChunks = maxOutstandingChunks
        lastFrame = now
    }

    /// A complete frame arrived. Returns the fatal error it causes, if any (`overloaded` past the outstanding limit).
    public mutating func received(_ message: WireMessage, at now: NIODeadline) -> WireError? {
        lastFrame = now
        guard case .getChunks(_, let ids) = message else { return nil }
        outstandingChunks += ids.count
        guard outstandingChunks <= maxOutstandingChunks else {
            return WireError(
                .overloaded,
                "\(outstandingChunks) chunk ids outstanding; the limit is \(maxOutstandingChunks) per connection")
        }
        return nil
    }

    /// A frame is being sent: an answer to a chunk id is no longer outstanding.
    public mutating func sent(_ message: WireMessage) {
        switch message {
        case .chunk, .chunkMissing: outstandingChunks = max(0, outstandingChunks - 1)
        default: break
        }
    }

    /// When the connection becomes idle, unless a complete frame arrives before.
    public var idleDeadline: NIODeadline { lastFrame + idleTimeout }

    public func isIdle(at now: NIODeadline) -> Bool { now >= idleDeadline }
}

/// The thin NIO shell around `ConnectionWatch` (its clock is the event loop's), placed between the frame codec and the application. It closes a
/// connection that is idle for the watch's timeout, and on a fatal error (a frame the decoder refuses, or too many
/// outstanding chunk ids) it sends ERROR with the matching code, lets nothing else out after it, and closes once the
/// ERROR is written or `errorGrace` has passed. The application reports its own fatal errors the same way, with
/// `channel.pipeline.fireErrorCaught(WireError)`, so its ERROR too is the last frame and is not cut off by the close (a peer that does not read cannot hold the connection open).
public final class ConnectionGuard: ChannelDuplexHandler {
    public typealias InboundIn = WireMessage
    public typealias InboundOut = WireMessage
    public typealias OutboundIn = WireMessage
    public typealias OutboundOut = WireMessage

    /// How long a connection lingers after a fatal error: for the ERROR to leave, and then (its sending half shut)
    /// for the peer to read it and close. A peer that does not read cannot hold the connection longer.
    public static let errorGrace: TimeAmount = .seconds(5)

    private var watch: ConnectionWatch
    private var timer: Scheduled<Void>?
    /// Set once a fatal error was sent: reads stop and writes are refused.
    private var failed = false
    /// Closes asked for while the connection lingers; done when it is closed.
    private var closeAfterError: [EventLoopPromise<Void>?] = []
    private var finished = false

    public init(idleTimeout: TimeAmount, maxOutstandingChunks: Int = WireLimits.maxOutstandingChunks) {
        watch = ConnectionWatch(idleTimeout: idleTimeout, maxOutstandingChunks: maxOutstandingChunks, now: .now())
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        watch = ConnectionWatch(
            idleTimeout: watch.idleTimeout, maxOutstandingChunks: watch.maxOutstandingChunks,
            now: context.eventLoop.now)
        schedule(context: context)
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    private func schedule(context: ChannelHandlerContext) {
        timer?.cancel()
        let loop = context.eventLoop.assumeIsolated()
        let deadline = watch.idleDeadline
        timer = loop.scheduleTask(deadline: deadline) { [self] in
            guard !failed else { return }
            if watch.isIdle(at: context.eventLoop.now) {
                // No complete frame for idleTimeout: the spec says close; nothing to report to a silent peer.
                failed = true
                context.close(promise: nil)
            } else {
                schedule(context: context)
            }
        }
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        let message = unwrapInboundIn(data)
        if let error = watch.received(message, at: context.eventLoop.now) {
            fail(context: context, error)
            return
        }
        context.fireChannelRead(data)
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let wire = error as? WireError, !failed { fail(context: context, wire) }
        context.fireErrorCaught(error)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !failed else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        watch.sent(unwrapOutboundIn(data))
        context.write(data, promise: promise)
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        // While lingering, keep reading (and dropping) what the peer sends: closing on unread bytes would reset the
        // connection, and a reset can discard the ERROR before the peer reads it.
        if failed && !finished { context.read() } else { context.fireChannelReadComplete() }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        finished = true
        let waiting = closeAfterError
        closeAfterError = []
        for case let promise? in waiting { promise.succeed(()) }
        context.fireChannelInactive()
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if failed && !finished && mode == .all {
            closeAfterError.append(promise)
            return
        }
        context.close(mode: mode, promise: promise)
    }

    /// Sends ERROR(code) as the last frame, shuts the sending half once it is written (the peer reads the ERROR,
    /// then end of stream), and closes when the peer closes or after `errorGrace`.
    private func fail(context: ChannelHandlerContext, _ error: WireError) {
        failed = true
        timer?.cancel()
        let written = context.eventLoop.makePromise(of: Void.self)
        let loop = context.eventLoop.assumeIsolated()
        timer = loop.scheduleTask(in: Self.errorGrace) { [self] in finishClose(context: context) }
        written.futureResult.assumeIsolated().whenComplete { [self] result in
            guard !finished else { return }
            if case .success = result {
                let shut = context.eventLoop.makePromise(of: Void.self)
                shut.futureResult.assumeIsolated().whenFailure { [self] _ in finishClose(context: context) }
                context.close(mode: .output, promise: shut)
            } else {
                finishClose(context: context)
            }
        }
        let text = String(error.message.utf8.prefix(WireLimits.maxErrorMessageBytes)) ?? "error"
        context.writeAndFlush(wrapOutboundOut(.error(error.code, text)), promise: written)
        context.read()
    }

    private func finishClose(context: ChannelHandlerContext) {
        guard !finished else { return }
        finished = true
        let waiting = closeAfterError
        closeAfterError = []
        let closed = context.eventLoop.makePromise(of: Void.self)
        context.close(promise: closed)
        for case let promise? in waiting { closed.futureResult.cascade(to: promise) }
    }
}
