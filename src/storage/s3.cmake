# s3: SigV4 signer and S3 REST client over libcurl (docs/s3.md)
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)
find_package(OpenSSL REQUIRED)
sgw_layer(s3
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/sigv4.cc ${CMAKE_CURRENT_LIST_DIR}/s3_client.cc
          ${CMAKE_CURRENT_LIST_DIR}/aws_credentials.cc
  DEPS sgw_common PkgConfig::CURL OpenSSL::Crypto pugixml::pugixml
       nlohmann_json::nlohmann_json)
