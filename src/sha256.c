/*
** SHA-256 for the sync's hashed columns: OpenSSL's libcrypto, which every
** process that loads the extension already has (libcurl links it on
** Debian), with its FIPS 180-4 implementation and the CPU's SHA
** instructions where there are any.  The only file that includes OpenSSL.
*/
#include <string.h>
#include <openssl/evp.h>
#include "kustomer.h"

int kustomer_sha256_hex(const unsigned char *aSalt, size_t nSalt,
                        const void *pData, size_t nData, char *zOut){
  static const char aHex[] = "0123456789abcdef";
  unsigned char aMd[EVP_MAX_MD_SIZE];
  unsigned int nMd = 0, i;
  EVP_MD_CTX *pCtx = EVP_MD_CTX_new();
  int bOk = pCtx!=0
         && EVP_DigestInit_ex(pCtx, EVP_sha256(), 0)==1
         && (nSalt==0 || EVP_DigestUpdate(pCtx, aSalt, nSalt)==1)
         && (nData==0 || EVP_DigestUpdate(pCtx, pData, nData)==1)
         && EVP_DigestFinal_ex(pCtx, aMd, &nMd)==1
         && nMd==32;
  EVP_MD_CTX_free(pCtx);
  if( !bOk ){
    zOut[0] = 0;
    return 1;
  }
  for(i=0; i<32; i++){
    zOut[2*i] = aHex[aMd[i]>>4];
    zOut[2*i+1] = aHex[aMd[i]&15];
  }
  zOut[64] = 0;
  return 0;
}
