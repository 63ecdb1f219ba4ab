package dev.strata.flink;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.util.Collection;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

/**
 * The TLS trust of Strata's sinks. The CA certificates travel inside a sink as PEM text rather than
 * as a file path, so the task managers of a Flink cluster need no file of their own.
 */
final class TrustedCa {
  private TrustedCa() {}

  /**
   * The JVM's default context when {@code caPem} is empty (the JVM's trusted CAs), otherwise one
   * trusting only the certificates of {@code caPem}.
   *
   * @throws CertificateException when {@code caPem} holds no certificate, so a wrong file fails at
   *     the sink's start instead of trusting nothing
   */
  static SSLContext sslContext(String caPem) throws GeneralSecurityException, IOException {
    if (caPem == null || caPem.isEmpty()) {
      return SSLContext.getDefault();
    }
    Collection<? extends Certificate> cas =
        CertificateFactory.getInstance("X.509")
            .generateCertificates(new ByteArrayInputStream(caPem.getBytes(StandardCharsets.UTF_8)));
    if (cas.isEmpty()) {
      throw new CertificateException("the CA text holds no PEM certificate");
    }
    KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
    trust.load(null, null);
    int i = 0;
    for (Certificate ca : cas) {
      trust.setCertificateEntry("ca-" + i++, ca);
    }
    TrustManagerFactory factory =
        TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
    factory.init(trust);
    SSLContext context = SSLContext.getInstance("TLS");
    context.init(null, factory.getTrustManagers(), null);
    return context;
  }
}
