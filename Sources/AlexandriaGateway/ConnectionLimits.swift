import NIOCore
import NIOHTTP1

/// What one connection has done so far, shared by the two handlers that enforce its limits. Event-loop bound.
final class ConnectionState {
    /// Bytes received since the last request head was decoded (a head, or a head's worth of garbage).
    var bytesSinceHead = 0
    /// Whether a line feed arrived since the last head (the request line is complete), and how long the request
    /// line was: a request line over the URI limit is `414`, otherwise too many bytes mean headers, `431`.
    var sawLineFeed = false
    var requestLineBytes = 0

    /// Whether a head that is too large is so because of its request line.
    func uriTooLong(limit: Int) -> Bool { !sawLineFeed || requestLineBytes > limit }
    /// A response head was written and its end was not yet.
    var responding = false
}

@available(*, unavailable)
extension ConnectionState: Sendable {}

/// Counts raw bytes before the HTTP decoder: a request whose head (request line and headers) exceeds
/// `maxHeadBytes` is answered `414` (the request line never ended) or `431` and the connection is closed, before
/// the decoder has buffered more. Sits first in the pipeline, so its answer is raw bytes.
final class HeadSizeGuard: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let state: ConnectionState
    let maxHeadBytes: Int
    let maxURIBytes: Int
    private var closed = false

    init(state: ConnectionState, maxHeadBytes: Int, maxURIBytes: Int) {
        self.state = state
        self.maxHeadBytes = maxHeadBytes
        self.maxURIBytes = maxURIBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closed else { return }
        let buffer = unwrapInboundIn(data)
        if !state.sawLineFeed {
            if let lf = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
                state.requestLineBytes += lf - buffer.readerIndex
                state.sawLineFeed = true
            } else {
                state.requestLineBytes += buffer.readableBytes
            }
        }
        state.bytesSinceHead += buffer.readableBytes
        guard state.bytesSinceHead <= maxHeadBytes else {
            closed = true
            if !state.responding {
                let status =
                    state.uriTooLong(limit: maxURIBytes) ? "414 URI Too Long" : "431 Request Header Fields Too Large"
                let text = "HTTP/1.1 \(status)\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
                context.writeAndFlush(wrapInboundOut(ByteBuffer(string: text)), promise: nil)
            }
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(data)
    }
}

/// Sits after the HTTP codec: answers parser errors (`414` or `431` for an oversized request line or header field,
/// `400` otherwise) when no
/// response is under way, tracks whether one is, and enforces the header timeout (a request head must arrive within
/// `headerTimeout` of the connection opening) and the keep-alive idle timeout (the next head within `idleTimeout` of
/// the last response).
final class RequestLimitsHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    let state: ConnectionState
    let headerTimeout: TimeAmount
    let idleTimeout: TimeAmount
    let maxURIBytes: Int
    private var timer: Scheduled<Void>?

    init(state: ConnectionState, headerTimeout: TimeAmount, idleTimeout: TimeAmount, maxURIBytes: Int) {
        self.state = state
        self.maxURIBytes = maxURIBytes
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) { arm(context, headerTimeout) }
    func handlerRemoved(context: ChannelHandlerContext) { timer?.cancel() }

    private func arm(_ context: ChannelHandlerContext, _ amount: TimeAmount) {
        timer?.cancel()
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: amount) { channel.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) {
            timer?.cancel()
            timer = nil
            state.bytesSinceHead = 0
            state.sawLineFeed = false
            state.requestLineBytes = 0
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200: state.responding = true
        case .end:
            state.responding = false
            arm(context, idleTimeout)
        default: break
        }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let parse = error as? HTTPParserError, !state.responding {
            let status: HTTPResponseStatus =
                parse != .headerOverflow
                ? .badRequest : state.uriTooLong(limit: maxURIBytes) ? .uriTooLong : .requestHeaderFieldsTooLarge
            let head = HTTPResponseHead(
                version: .http1_1, status: status, headers: ["Connection": "close", "Content-Length": "0"])
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
        context.close(promise: nil)
    }
}

/// Closes a connection whose writes stalled for the idle timeout (a client that stopped reading mid-body).
final class StallCloser: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}

/// The whole pipeline of a connection beyond the cap: writes a fixed `503` (`Retry-After: 1`) as soon as the
/// connection is active, closes its output, drops whatever the client sends (so the close is a FIN, not a reset that
/// could destroy the answer in the client's buffer) and closes within `lingerSeconds`.
final class RefuseHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    static let lingerSeconds: Int64 = 2
    static let response = ByteBuffer(
        string: "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n"
            + "Content-Type: application/json\r\nX-Error-Code: TooManyConnections\r\nContent-Length: 32\r\n\r\n"
            + "{\"error\":\"too many connections\"}")

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { refuse(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        refuse(context)
        context.fireChannelActive()
    }

    private var answered = false

    private func refuse(_ context: ChannelHandlerContext) {
        guard !answered else { return }
        answered = true
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(Self.response)).whenComplete { _ in
            channel.close(mode: .output, promise: nil)
        }
        context.eventLoop.scheduleTask(in: .seconds(Self.lingerSeconds)) { channel.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}
