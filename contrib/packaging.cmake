# What `cmake --install` puts in place beside the binary (the man page, the systemd unit, the
# Debian copyright and changelog), and `cpack` a .deb of it (Depends found by dpkg-shlibdeps).
include(GNUInstallDirs)

# The man page, compressed as Debian's policy asks (-n: no timestamp, for reproducible builds).
set(SAVEFS_MAN_GZ ${CMAKE_CURRENT_BINARY_DIR}/savefs.1.gz)
add_custom_command(OUTPUT ${SAVEFS_MAN_GZ}
                   COMMAND gzip -9n -c ${CMAKE_SOURCE_DIR}/docs/savefs.1 > ${SAVEFS_MAN_GZ}
                   DEPENDS ${CMAKE_SOURCE_DIR}/docs/savefs.1)
set(SAVEFS_CHANGELOG_GZ ${CMAKE_CURRENT_BINARY_DIR}/changelog.gz)
add_custom_command(OUTPUT ${SAVEFS_CHANGELOG_GZ}
                   COMMAND gzip -9n -c ${CMAKE_SOURCE_DIR}/contrib/changelog > ${SAVEFS_CHANGELOG_GZ}
                   DEPENDS ${CMAKE_SOURCE_DIR}/contrib/changelog)
add_custom_target(savefs_man ALL DEPENDS ${SAVEFS_MAN_GZ} ${SAVEFS_CHANGELOG_GZ})
install(FILES ${SAVEFS_MAN_GZ} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

# The unit goes where this system's systemd looks (systemd.pc), else where Debian 12 keeps units.
pkg_get_variable(SAVEFS_SYSTEMD_PC_UNITDIR systemd systemdsystemunitdir)
if(NOT SAVEFS_SYSTEMD_PC_UNITDIR)
  set(SAVEFS_SYSTEMD_PC_UNITDIR /lib/systemd/system)
endif()
set(SAVEFS_SYSTEMD_UNITDIR ${SAVEFS_SYSTEMD_PC_UNITDIR} CACHE PATH "Where the systemd unit goes")
configure_file(${CMAKE_SOURCE_DIR}/contrib/savefs.service ${CMAKE_CURRENT_BINARY_DIR}/savefs.service
               @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/savefs.service DESTINATION ${SAVEFS_SYSTEMD_UNITDIR})
install(FILES ${CMAKE_SOURCE_DIR}/contrib/copyright ${SAVEFS_CHANGELOG_GZ}
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

# libvirt's hook that refuses a cold boot of a domain whose state a savefs snapshot holds
# (docs/libvirt.md): a script of libvirt's qemu.d, beside any hook of the host's own. Under /etc:
# a conffile of the package.
if(LIBVIRT_FOUND)
  set(SAVEFS_LIBVIRT_HOOKDIR ${CMAKE_INSTALL_FULL_SYSCONFDIR}/libvirt/hooks/qemu.d)
  install(PROGRAMS ${CMAKE_SOURCE_DIR}/contrib/libvirt-hook DESTINATION ${SAVEFS_LIBVIRT_HOOKDIR}
          RENAME savefs)
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/conffiles "${SAVEFS_LIBVIRT_HOOKDIR}/savefs\n")
  set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_CURRENT_BINARY_DIR}/conffiles)
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME savefs)
set(CPACK_PACKAGE_VENDOR "the savefs maintainers")
set(CPACK_PACKAGE_CONTACT "savefs maintainers <maintainers@savefs.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "QEMU VMs as a filesystem: save and restore them with shell gestures")
set(CPACK_PACKAGE_DESCRIPTION
    "savefs shows every QEMU VM as a directory: echo 4 > VM/save saves it\nthrough QEMU's multifd migration into checksummed chunk files, published\natomically as a snapshot directory; moving a snapshot into VM/restore/\nstarts the VM again from it.")
# The package installs where this build was configured to (the unit names the binary's path):
# configure a build for the .deb with -DCMAKE_INSTALL_PREFIX=/usr.
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS fuse3)
# qemu-img makes the overlays of live checkpoints and of their restores (job/ckpt.c).
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "qemu-system-x86, qemu-utils")
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://savefs.invalid")
include(CPack)
