/*
 * secret.h - wiping key material and credentials.
 *
 * OPENSSL_cleanse, unlike memset, is not removed by the optimiser when the
 * memory is freed or goes out of scope right after. Every secret the
 * gateway held (keys, credentials, tokens, signed headers) goes through
 * one of these.
 */
#ifndef SSMGATE_SECRET_H
#define SSMGATE_SECRET_H

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

static inline void secret_wipe(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}

/* Wipes a NUL-terminated string in place (NULL is fine). */
static inline void secret_wipe_str(char *s)
{
    if (s)
        OPENSSL_cleanse(s, strlen(s));
}

/* Wipes then frees a heap string. */
static inline void secret_free_str(char *s)
{
    secret_wipe_str(s);
    free(s);
}

#endif
