/* An LD_PRELOAD shim that gives every OpenSSL context a key log callback, so that a program
 * which writes no key log (hostapd, wpa_supplicant, FreeRADIUS) still tells its TLS secrets:
 * each NSS key log line is appended to the file named by $CAPANA_KEYLOG.
 *
 *     gcc -shared -fPIC -o keylog-shim.so keylog-shim.c -ldl
 *     CAPANA_KEYLOG=keys.log LD_PRELOAD=./keylog-shim.so hostapd hostapd.conf
 *
 * Used by make_eap_captures.py for the TLS 1.3 EAP-TLS sample; nothing in capana loads it. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>

static void write_line(const SSL *ssl, const char *line) {
    (void)ssl;
    const char *path = getenv("CAPANA_KEYLOG");
    FILE *out = path ? fopen(path, "a") : NULL;
    if (out) {
        fprintf(out, "%s\n", line);
        fclose(out);
    }
}

SSL_CTX *SSL_CTX_new(const SSL_METHOD *method) {
    static SSL_CTX *(*real)(const SSL_METHOD *);
    if (!real)
        real = (SSL_CTX * (*)(const SSL_METHOD *)) dlsym(RTLD_NEXT, "SSL_CTX_new");
    SSL_CTX *context = real(method);
    if (context)
        SSL_CTX_set_keylog_callback(context, write_line);
    return context;
}

SSL_CTX *SSL_CTX_new_ex(OSSL_LIB_CTX *library, const char *properties, const SSL_METHOD *method) {
    static SSL_CTX *(*real)(OSSL_LIB_CTX *, const char *, const SSL_METHOD *);
    if (!real)
        real = (SSL_CTX * (*)(OSSL_LIB_CTX *, const char *, const SSL_METHOD *))
            dlsym(RTLD_NEXT, "SSL_CTX_new_ex");
    SSL_CTX *context = real(library, properties, method);
    if (context)
        SSL_CTX_set_keylog_callback(context, write_line);
    return context;
}
