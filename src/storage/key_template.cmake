# key_template: storage keys from templates, every component sanitised (docs/key-template.md)
sgw_layer(key_template SOURCES ${CMAKE_CURRENT_LIST_DIR}/key_template.cc DEPS sgw_common)
