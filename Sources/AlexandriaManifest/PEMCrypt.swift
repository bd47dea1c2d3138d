import COpenSSL

/// Passphrase-protected private keys as standard encrypted PKCS#8 PEM (PBES2, AES-256-CBC), through OpenSSL's
/// libcrypto, so `openssl pkey` and other tools read what `alexandria keys export` writes and the other way round.
enum PEMCrypt {
    /// PBKDF2-HMAC-SHA256 rounds for exported keys (OWASP's 2023 figure for PBKDF2-SHA256).
    static let iterations: Int32 = 600_000

    /// Encrypts a private key (DER, PKCS#8 or SEC1) under `passphrase`.
    static func encrypt(privateKeyDER der: [UInt8], passphrase: [UInt8]) throws(ManifestError) -> String {
        guard !passphrase.isEmpty else { throw ManifestError(.badKey, "the passphrase is empty") }
        var cursor: UnsafePointer<UInt8>? = nil
        let key: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            cursor = buffer.baseAddress
            return d2i_AutoPrivateKey(nil, &cursor, Int(buffer.count))
        }
        guard let key else { throw ManifestError(.badKey, "OpenSSL cannot read the private key") }
        defer { EVP_PKEY_free(key) }
        guard let bio = BIO_new(BIO_s_mem()) else { throw ManifestError(.badKey, "out of memory") }
        defer { BIO_free(bio) }
        // PBES2 with AES-256-CBC and PBKDF2-HMAC-SHA256 at `iterations` rounds (OpenSSL's default is only 2048).
        guard let info = EVP_PKEY2PKCS8(key) else { throw ManifestError(.badKey, "OpenSSL cannot wrap the key") }
        defer { PKCS8_PRIV_KEY_INFO_free(info) }
        let sealed = passphrase.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { c in
                PKCS8_encrypt(-1, EVP_aes_256_cbc(), c.baseAddress, Int32(c.count), nil, 0, iterations, info)
            }
        }
        guard let sealed else { throw ManifestError(.badKey, "OpenSSL could not encrypt the key") }
        defer { X509_SIG_free(sealed) }
        let ok = PEM_write_bio_PKCS8(bio, sealed)
        guard ok == 1 else { throw ManifestError(.badKey, "OpenSSL could not encrypt the key") }
        return readAll(bio)
    }

    /// Decrypts an encrypted (or plain) PEM private key; returns SEC1/PKCS#8 DER.
    static func decrypt(pem: String, passphrase: [UInt8]) throws(ManifestError) -> [UInt8] {
        let bytes = Array(pem.utf8)
        guard let bio = bytes.withUnsafeBytes({ BIO_new_mem_buf($0.baseAddress, Int32($0.count)) }) else {
            throw ManifestError(.badKey, "out of memory")
        }
        defer { BIO_free(bio) }
        var pass = passphrase.map { CChar(bitPattern: $0) } + [0]
        let key = pass.withUnsafeMutableBufferPointer { p in PEM_read_bio_PrivateKey(bio, nil, nil, p.baseAddress) }
        ERR_clear_error()
        guard let key else {
            throw ManifestError(.badKey, "cannot decrypt the key: wrong passphrase, or not a PEM private key")
        }
        defer { EVP_PKEY_free(key) }
        var out: UnsafeMutablePointer<UInt8>? = nil
        let n = i2d_PrivateKey(key, &out)
        guard n > 0, let out else { throw ManifestError(.badKey, "OpenSSL could not encode the key") }
        defer { CRYPTO_free(out, #fileID, #line) }
        return Array(UnsafeBufferPointer(start: out, count: Int(n)))
    }

    private static func readAll(_ bio: OpaquePointer) -> String {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { BIO_read(bio, $0.baseAddress, Int32($0.count)) }
            if n <= 0 { break }
            out += buffer[0..<Int(n)]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
