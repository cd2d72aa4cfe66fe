//! Windows packaging on any host: icon, PE resources, NSIS installer, MSIX, portable ZIP.
