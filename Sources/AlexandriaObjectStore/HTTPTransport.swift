import NIOCore
import NIOHTTP1
import NIOPosix

/// One HTTP/1.1 exchange over a fresh TCP connection, with NIOHTTP1 directly (no AsyncHTTPClient: it would pull
/// swift-nio-ssl, a second BoringSSL, into the build; see Protocol/store-s3.md). Plain HTTP only.
///
/// A connection per request keeps retries and failure handling simple (no half-dead pooled connection can eat a
/// request); over loopback and LAN the connect costs well under a millisecond, small beside S3 request latency.
struct HTTPTransport: Sendable {
    let host: String
    let port: Int
    let group: any EventLoopGroup
    /// A connection that delivers no byte for this long is closed and the request fails (and may be retried).
    let idleTimeout: TimeAmount
    let connectTimeout: TimeAmount

    struct Response: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: ByteBuffer
    }

    /// Thrown for failures of the connection itself (refused, reset, idle, cut short): safe to retry.
    struct ConnectionFailure: Error {
        var reason: String
    }

    /// Sends `head` and `body`, and returns the response. A 2xx body is collected up to `maxBody` bytes unless
    /// `sink` is given, which then receives it in pieces instead; any other body up to `maxErrorBytes`.
    func exchange(
        head: HTTPRequestHead, body: ByteBuffer?, maxBody: Int,
        sink: (@Sendable (ByteBuffer) async throws -> Void)?
    ) async throws -> Response {
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            let idle = idleTimeout
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(connectTimeout)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: idle))
                        try channel.pipeline.syncOperations.addHandler(CloseOnIdle())
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                            wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw ConnectionFailure(reason: "cannot connect to \(host):\(port): \(error)")
        }
        do {
            return try await channel.executeThenClose { inbound, outbound in
                try await outbound.write(.head(head))
                if let body, body.readableBytes > 0 { try await outbound.write(.body(.byteBuffer(body))) }
                try await outbound.write(.end(nil))
                var response: Response?
                var collected = ByteBuffer()
                for try await part in inbound {
                    switch part {
                    case .head(let h):
                        if h.status.code == 100 { continue }
                        response = Response(status: Int(h.status.code), headers: h.headers, body: ByteBuffer())
                        // Size the buffer once from Content-Length (within the limit) instead of doubling into it.
                        if sink == nil, let length = h.headers.first(name: "content-length").flatMap(Int.init),
                            length
                                <= ((200..<300).contains(Int(h.status.code))
                                    ? maxBody : ObjectStoreLimits.maxErrorBytes)
                        {
                            collected.reserveCapacity(length)
                        }
                    case .body(let piece):
                        guard let r = response else { throw ConnectionFailure(reason: "body before head") }
                        if let sink, (200..<300).contains(r.status) {
                            try await sink(piece)
                        } else {
                            let limit = (200..<300).contains(r.status) ? maxBody : ObjectStoreLimits.maxErrorBytes
                            guard collected.readableBytes + piece.readableBytes <= limit else {
                                throw ObjectStoreError(
                                    .limitExceeded,
                                    "a response from \(host):\(port) is over \(limit) bytes (HTTP \(r.status))",
                                    status: r.status)
                            }
                            var piece = piece
                            collected.writeBuffer(&piece)
                        }
                    case .end:
                        guard var r = response else { throw ConnectionFailure(reason: "end before head") }
                        r.body = collected
                        return r
                    }
                }
                throw ConnectionFailure(reason: "the connection closed before the response was complete")
            }
        } catch let error as ObjectStoreError {
            throw error
        } catch let error as ConnectionFailure {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw ConnectionFailure(reason: "\(error)")
        }
    }
}

/// Closes the channel when `IdleStateHandler` reports no read for its timeout; the request then fails as a
/// connection failure instead of hanging.
private final class CloseOnIdle: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

@available(*, unavailable)
extension CloseOnIdle: Sendable {}
