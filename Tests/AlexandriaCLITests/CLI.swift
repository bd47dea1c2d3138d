import AlexandriaCore
import Foundation

/// Runs the built `alexandria` binary in a home of its own.
struct CLI {
    let home: String

    static let binary: String = {
        // Tests run from the build folder that also holds the executable.
        let exe =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("alexandria").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug/alexandria").path
    }()

    /// What runs the binary: nothing (the binary itself), or `setpriv …` for an unprivileged home when the tests
    /// themselves run as root.
    let launcher: [String]

    init() {
        home = FileManager.default.temporaryDirectory.path + "/alexandria-cli-\(UUID().uuidString)"
        launcher = []
    }

    init(home: String, launcher: [String]) {
        self.home = home
        self.launcher = launcher
    }

    /// A home used only by an unprivileged user: this one when the tests do not run as root (as in CI), else
    /// `nobody` through `setpriv` with no capabilities, so what root hides shows either way.
    init(unprivileged: Bool) {
        guard unprivileged, geteuid() == 0 else {
            self.init()
            return
        }
        self.init(home: "/tmp/alexandria-cli-\(UUID().uuidString)", launcher: Self.setpriv(uid: 65534))
    }

    /// `setpriv` as `uid`, no groups, no capabilities at all, no way to gain any.
    static func setpriv(uid: Int) -> [String] {
        [
            "/usr/bin/setpriv", "--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--no-new-privs",
        ]
    }

    /// The executable and arguments that run `alexandria ARGUMENTS` for this home, through the launcher and
    /// `wrapper` (e.g. a shell that lowers a limit first, then `exec "$@"`).
    func command(_ arguments: [String], wrapper: [String] = []) -> (URL, [String]) {
        let full = launcher + wrapper + [Self.binary] + arguments
        return (URL(fileURLWithPath: full[0]), Array(full.dropFirst()))
    }

    func cleanUp() { try? FileManager.default.removeItem(atPath: home) }

    struct Result {
        let status: Int32
        let stdout: Data
        let stderr: String
        var text: String { String(decoding: stdout, as: UTF8.self) }
    }

    @discardableResult
    func run(_ arguments: [String], stdin: FileHandle? = nil) throws -> Result {
        let process = try start(arguments)
        let out = process.outPipe.fileHandleForReading.readDataToEndOfFile()
        let err = process.errPipe.fileHandleForReading.readDataToEndOfFile()
        process.process.waitUntilExit()
        return Result(
            status: process.process.terminationStatus, stdout: out, stderr: String(decoding: err, as: UTF8.self))
    }

    struct Running {
        let process: Process
        let outPipe: Pipe
        let errPipe: Pipe
    }

    func start(_ arguments: [String]) throws -> Running {
        let process = Process()
        (process.executableURL, process.arguments) = command(arguments + ["--home", home])
        var env = ProcessInfo.processInfo.environment
        env["ALEXANDRIA_HOME"] = nil
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        return Running(process: process, outPipe: out, errPipe: err)
    }

    /// `alexandria` puts its subcommand first; `--home` is accepted after it.
    func run(_ command: String, _ rest: String...) throws -> Result {
        try runCommand([command] + rest)
    }

    func runCommand(_ arguments: [String]) throws -> Result {
        let process = Process()
        (process.executableURL, process.arguments) = command(arguments + ["--home", home])
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: o, stderr: String(decoding: e, as: UTF8.self))
    }

    func write(_ bytes: [UInt8], to name: String) throws -> String {
        let path = home + "-data/" + name
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }
}

func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = (seed &+ 1) &* 0x9E37_79B9_7F4A_7C15 | 1
    return (0..<count).map { _ in
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return UInt8(truncatingIfNeeded: (state &* 2_685_821_657_736_338_717) >> 56)
    }
}

/// A loopback TCP port nothing listens on now, for a node or gateway a test starts. Drawn below Linux's ephemeral
/// range (32768 and up), so the source port of some other test's outgoing connection never holds it; checked by
/// binding it. Tests run in parallel, so a blind random pick could collide.
func freeLoopbackPort() -> Int {
    while true {
        let port = Int.random(in: 20_000...32_000)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return port }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if bound == 0 { return port }
    }
}
