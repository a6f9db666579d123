use super::*;

fn id(r: Result<impl std::fmt::Debug, ApiError>) -> (u16, &'static str) {
    let e = r.unwrap_err();
    (e.status.as_u16(), e.id)
}

#[test]
fn reset_bodies() {
    assert_eq!(
        reset(br#"{"ResetType":"ForceOff"}"#).unwrap(),
        PowerAction::ForceOff
    );
    assert_eq!(id(reset(b"{")), (400, "MalformedJSON"));
    assert_eq!(id(reset(b"[]")), (400, "MalformedJSON"));
    assert_eq!(id(reset(b"{}")), (400, "ActionParameterMissing"));
    assert_eq!(
        id(reset(br#"{"ResetType":1}"#)),
        (400, "ActionParameterValueTypeError")
    );
    assert_eq!(
        id(reset(br#"{"ResetType":"Off"}"#)),
        (400, "ActionParameterValueNotInList")
    );
    assert_eq!(
        id(reset(br#"{"ResetType":"On","X":1}"#)),
        (400, "ActionParameterUnknown")
    );
    let e = reset(br#"{"ResetType":"Off"}"#).unwrap_err();
    assert!(
        e.message.contains("ForceOff, GracefulShutdown"),
        "{}",
        e.message
    );
}

#[test]
fn boot_patches() {
    let none = BootOverride::default();
    let b = boot_patch(br#"{"Boot":{"BootSourceOverrideTarget":"Pxe"}}"#, none).unwrap();
    assert_eq!((b.target, b.enabled), (BootTarget::Pxe, BootEnabled::Once));
    let b = boot_patch(
        br#"{"Boot":{"BootSourceOverrideTarget":"Cd","BootSourceOverrideEnabled":"Continuous","BootSourceOverrideMode":"UEFI"}}"#,
        none,
    )
    .unwrap();
    assert_eq!(
        b,
        BootOverride {
            target: BootTarget::Cd,
            enabled: BootEnabled::Continuous,
            mode: BootMode::Uefi
        }
    );
    assert_eq!(id(boot_patch(b"{}", none)), (400, "NoOperation"));
    assert_eq!(id(boot_patch(b"nope", none)), (400, "MalformedJSON"));
    assert_eq!(
        id(boot_patch(br#"{"PowerState":"On"}"#, none)),
        (400, "PropertyNotWritable")
    );
    assert_eq!(
        id(boot_patch(br#"{"Boot":3}"#, none)),
        (400, "PropertyValueTypeError")
    );
    assert_eq!(
        id(boot_patch(
            br#"{"Boot":{"BootSourceOverrideTarget":true}}"#,
            none
        )),
        (400, "PropertyValueTypeError")
    );
    let e = boot_patch(br#"{"Boot":{"BootSourceOverrideTarget":"Floppy"}}"#, none).unwrap_err();
    assert_eq!(e.id, "PropertyValueNotInList");
    assert!(e.message.contains("None, Pxe, Hdd, Cd"), "{}", e.message);
    assert_eq!(e.related, ["#/Boot/BootSourceOverrideTarget"]);
    assert_eq!(
        id(boot_patch(
            br#"{"Boot":{"BootSourceOverrideEnabled":"Always"}}"#,
            none
        )),
        (400, "PropertyValueNotInList")
    );
    assert_eq!(
        id(boot_patch(br#"{"Boot":{"BootOrder":["a"]}}"#, none)),
        (400, "PropertyNotWritable")
    );
}

#[test]
fn media_bodies() {
    let m = insert_media(br#"{"Image":"http://127.0.0.1/a.iso","TransferProtocolType":"HTTP","Inserted":true,"WriteProtected":true}"#).unwrap();
    assert_eq!(m.image, "http://127.0.0.1/a.iso");
    assert!(m.auth.is_none());
    let m = insert_media(
        br#"{"Image":"https://h/a.iso","UserName":"u","Password":"p","TransferMethod":"Stream"}"#,
    )
    .unwrap();
    assert_eq!(m.auth, Some(("u".into(), "p".into())));
    assert_eq!(id(insert_media(b"{}")), (400, "ActionParameterMissing"));
    assert_eq!(
        id(insert_media(br#"{"Image":"ftp://h/a.iso"}"#)),
        (400, "ActionParameterValueFormatError")
    );
    assert_eq!(
        id(insert_media(br#"{"Image":"http://"}"#)),
        (400, "ActionParameterValueFormatError")
    );
    assert_eq!(
        id(insert_media(br#"{"Image":5}"#)),
        (400, "ActionParameterValueTypeError")
    );
    assert_eq!(
        id(insert_media(
            br#"{"Image":"http://h/a","WriteProtected":false}"#
        )),
        (400, "ActionParameterValueNotInList")
    );
    assert_eq!(
        id(insert_media(br#"{"Image":"http://h/a","Inserted":"yes"}"#)),
        (400, "ActionParameterValueTypeError")
    );
    assert_eq!(
        id(insert_media(
            br#"{"Image":"http://h/a","TransferProtocolType":"NFS"}"#
        )),
        (400, "ActionParameterValueNotInList")
    );
    assert_eq!(
        id(insert_media(br#"{"Image":"http://h/a","Foo":1}"#)),
        (400, "ActionParameterUnknown")
    );
    assert!(eject_media(b"").is_ok());
    assert!(eject_media(b"{}").is_ok());
    assert_eq!(
        id(eject_media(br#"{"Image":"x"}"#)),
        (400, "ActionParameterUnknown")
    );
}

#[test]
fn login_bodies() {
    assert_eq!(
        login(br#"{"UserName":"u","Password":"p"}"#).unwrap(),
        ("u".to_string(), "p".to_string())
    );
    assert_eq!(id(login(br#"{"UserName":"u"}"#)), (400, "PropertyMissing"));
    assert_eq!(
        id(login(br#"{"UserName":"u","Password":1}"#)),
        (400, "PropertyValueTypeError")
    );
    assert_eq!(
        id(login(br#"{"UserName":"u","Password":"p","X":1}"#)),
        (400, "PropertyUnknown")
    );
}
